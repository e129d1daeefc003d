"""Findings: one verdict per claim of the paper, computed from the study's tables.

A verdict is computed, never typed in: each claim reads named table rows, quotes the numbers it used and the
threshold it applied, so a reader can check it against the tables. A claim whose data the tables lack (table
absent, column absent, no qualifying rows) is "not measured", never given a made-up number. The claims and
their checks are registered in `claims.CLAIMS`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..atomic import write_text
from ..stage_outputs import read_tables
from ..uncertainty import NOISE_Z
from .claims import CLAIMS, Claim
from .subnetwork_checks import layer_spread
from .verdicts import FAILS, HOLDS, NOT_MEASURED, Tables

__all__ = ["CLAIMS", "COLUMNS", "FAILS", "HOLDS", "NOT_MEASURED", "Claim", "compute_findings", "findings_markdown",
           "layer_spread", "load_tables", "read_tables", "write_findings"]

COLUMNS = ["claim", "verdict", "evidence", "threshold"]


def compute_findings(tables: Tables, criterion: str, thresholds: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per claim (in CLAIMS order): verdict, the numbers behind it, the threshold applied.

    `criterion` is the headline sparsity label (e.g. "tol=1e-05"): sparsity.csv's column `sparsity <criterion>`.
    An unknown threshold name is an error: a typo would otherwise silently leave the default in force.
    """
    thresholds = thresholds or {}
    unknown = sorted(set(thresholds) - set(CLAIMS))
    if unknown:
        raise ValueError(f"unknown finding thresholds {unknown}; known: {sorted(CLAIMS)}")
    column = f"sparsity {criterion}"
    rows = []
    for claim in CLAIMS.values():
        limit = float(thresholds.get(claim.id, claim.threshold))
        verdict, evidence = claim.check(tables, column, limit)
        rows.append({"claim": claim.id, "verdict": verdict, "evidence": evidence,
                     "threshold": claim.threshold_text(limit)})
    return pd.DataFrame(rows, columns=COLUMNS)


def load_tables(folder: str | os.PathLike) -> Tables:
    """Every *.csv of `folder`, keyed by file stem; an absent folder is no tables (every claim not measured)."""
    return read_tables(sorted(Path(folder).glob("*.csv")))


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def findings_markdown(df: pd.DataFrame) -> str:
    """The findings for people: what each verdict means, then one line per claim."""
    how = ("Each row is one claim of the paper (arXiv 2505.11711), checked against this study's tables. "
           f"The verdict is \"{HOLDS}\" or \"{FAILS}\" by the threshold shown, applied to the numbers quoted as "
           f"evidence (all percentages 0-100, accuracy in points); \"{NOT_MEASURED}\" means the tables of this "
           "configuration lack the runs or columns the claim needs, so no number is given. Sparsity is the % of "
           "parameter entries unchanged at the headline criterion. A claim that compares accuracies decides only "
           "beyond the noise: each accuracy has its binomial standard error sqrt(p(1-p)/n) on its n test examples, "
           f"a difference the combined error sqrt(se1² + se2²), and a difference less than {NOISE_Z:g} combined "
           "errors from its threshold is \"within noise\" (the test set cannot tell), which is no win: the claim "
           f"is \"{FAILS}\" there, and the evidence says so. A verdict on a small model and few steps says "
           "what this configuration shows, not whether the paper's claim is true at its scale.")
    lines = ["# Findings: the paper's claims, checked", "", how, "",
             "| claim | statement | verdict | evidence | threshold |", "|---|---|---|---|---|"]
    for row in df.itertuples(index=False):
        statement = CLAIMS[row.claim].statement if row.claim in CLAIMS else ""
        lines.append(f"| {_cell(row.claim)} | {_cell(statement)} | {_cell(row.verdict)} | "
                     f"{_cell(row.evidence)} | {_cell(row.threshold)} |")
    return "\n".join(lines) + "\n"


def write_findings(df: pd.DataFrame, csv_path: str | os.PathLike, md_path: str | os.PathLike) -> None:
    """CSV for tools, Markdown for people; each written atomically."""
    write_text(df.to_csv(index=False), csv_path)
    write_text(findings_markdown(df), md_path)
