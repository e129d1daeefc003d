"""Findings: one verdict per claim of the paper, computed from the study's tables.

A verdict is computed, never typed in: each claim reads named table rows, quotes the numbers it used and the
threshold it applied, so a reader can check it against the tables. A claim whose data the tables lack (table
absent, column absent, no qualifying rows) is "not measured", never given a made-up number.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import write_text

HOLDS, FAILS, NOT_MEASURED = "holds", "does not hold", "not measured"
COLUMNS = ["claim", "verdict", "evidence", "threshold"]
#: the SFT control trained from random initialisation: not a control of any RL run, but an SFT run.
SFT_FROM_INIT = "sft-from-init"
#: module groups whose rank says nothing about the transformer blocks (tied, vocabulary-sized matrices).
RANK_EXCLUDED = {"embedding", "embeddings", "embed", "lm_head"}

CLAIMS: dict[str, str] = {
    "rl-sparse": "RL finetuning leaves most parameter entries unchanged (its update is sparse).",
    "sft-dense": "SFT changes most parameter entries (its update is dense).",
    "matched-control": "At the same learning rate, steps and precision, an RL run is sparser than its SFT control.",
    "subnetwork-recovers": "Retraining only the RL subnetwork recovers the test accuracy of full finetuning.",
    "mask-beats-random": "The RL subnetwork beats a random mask of the same density, so the mask itself matters.",
    "subnetwork-same-weights": "Retraining the subnetwork alone reaches nearly the same weights as full finetuning.",
    "overlap-above-random": "Subnetworks of different runs overlap more than independent random masks would.",
    "full-rank": "Although sparse, the RL updates are nearly full rank.",
    "layers-uniform": "The update sparsity is spread evenly over the layers, not concentrated in a few.",
    "in-distribution": "Training on in-distribution (on-policy) data is what makes the update sparse.",
    "precision": "Alternative explanation, not the paper's: bf16 storage explains the sparsity "
                 "(bf16 runs are much sparser than fp32 runs).",
}

DEFAULT_THRESHOLDS: dict[str, float] = {
    "rl-sparse": 50.0,  # median sparsity of RL runs, %
    "sft-dense": 20.0,  # median sparsity of SFT runs, %
    "matched-control": 0.0,  # margin (points) by which RL must exceed its SFT control
    "subnetwork-recovers": 2.0,  # accuracy points the subnetwork may fall short of full finetuning
    "mask-beats-random": 0.0,  # margin (points) over the random mask of the same density
    "subnetwork-same-weights": 90.0,  # mean % of entries equal, at the largest tolerance
    "overlap-above-random": 0.9,  # share (0-1) of run pairs whose overlap beats random both ways
    "full-rank": 90.0,  # mean rank, % of the maximum
    "layers-uniform": 10.0,  # largest std (points) of layer-mean sparsity within a run
    "in-distribution": 0.0,  # margin (points) of on-policy over off-policy sparsity
    "precision": 20.0,  # points by which bf16 must be sparser than fp32
}

THRESHOLD_TEXT: dict[str, Callable[[float], str]] = {
    "rl-sparse": lambda t: f"median >= {t:g}%",
    "sft-dense": lambda t: f"median <= {t:g}%",
    "matched-control": lambda t: f"RL > SFT + {t:g} points, every pair",
    "subnetwork-recovers": lambda t: f"within {t:.1f} points (or above), every run",
    "mask-beats-random": lambda t: f"> random + {t:.1f} points, every run",
    "subnetwork-same-weights": lambda t: f"mean >= {t:g}%",
    "overlap-above-random": lambda t: f">= {100 * t:g}% of pairs",
    "full-rank": lambda t: f"mean >= {t:g}%",
    "layers-uniform": lambda t: f"spread <= {t:g} points",
    "in-distribution": lambda t: f"on-policy > off-policy + {t:g} points, every algorithm",
    "precision": lambda t: f"bf16 - fp32 >= {t:g} points, every (algorithm, lr)",
}

Verdict = tuple[str, str]


# --- small helpers -------------------------------------------------------------------------------------------

def _p(x: float) -> str:
    return f"{x:.1f}%"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _lr(x: float) -> str:
    return f"{x:.0e}"


def _key(value: object) -> str:
    """A matching key that ignores float noise (a CSV round trip may turn 1e-06 into 1.0000000000000002e-06)."""
    if isinstance(value, (float, np.floating)):
        return f"{value:.6g}"
    return str(value)


def _listing(items: list[str], limit: int = 6) -> str:
    """Evidence lists stay readable: the first `limit` items, then how many were left out."""
    shown = "; ".join(items[:limit])
    return shown + (f"; ... +{len(items) - limit} more" if len(items) > limit else "")


def _missing(tables: dict[str, pd.DataFrame], name: str, columns: Iterable[str]) -> str | None:
    """Why a table cannot serve a claim (absent, or lacking a column), or None when it can."""
    df = tables.get(name)
    if df is None:
        return f"no {name}.csv"
    absent = [c for c in columns if c not in df.columns]
    return f"{name}.csv has no column {', '.join(repr(c) for c in absent)}" if absent else None


def _rows(tables: dict[str, pd.DataFrame], name: str, numeric: list[str]) -> pd.DataFrame:
    """The rows of a table with every `numeric` column a number (coerced; rows without one dropped)."""
    df = tables[name].copy()
    for c in numeric:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df.dropna(subset=numeric).reset_index(drop=True)


def _is_sft(df: pd.DataFrame) -> pd.Series:
    """SFT runs: the SFT-cont controls and SFT from random init."""
    sft = df["algorithm"].astype(str).str.lower() == "sft"
    return sft | (df["run"].astype(str) == SFT_FROM_INIT) if "run" in df else sft


# --- one function per claim: (tables, headline sparsity column, threshold) -> (verdict, evidence) ----------

def _median_claim(tables: dict[str, pd.DataFrame], column: str, t: float, rl: bool) -> Verdict:
    why = _missing(tables, "sparsity", ["run", "algorithm", column])
    if why:
        return NOT_MEASURED, why
    df = _rows(tables, "sparsity", [column])
    df = df[~_is_sft(df)] if rl else df[_is_sft(df)]
    kind = "RL" if rl else "SFT"
    if df.empty:
        return NOT_MEASURED, f"no {kind} run with a value in {column!r}"
    values = df.set_index("run")[column]
    median = float(values.median())
    ok = median >= t if rl else median <= t
    sign = (">=" if ok else "<") if rl else ("<=" if ok else ">")
    return (HOLDS if ok else FAILS,
            f"{_n(len(values), kind + ' run')}: median {_p(median)} {sign} {t:g}% "
            f"(min {values.idxmin()} {_p(values.min())}, max {values.idxmax()} {_p(values.max())})")


def _rl_sparse(tables: dict[str, pd.DataFrame], column: str, t: float) -> Verdict:
    return _median_claim(tables, column, t, rl=True)


def _sft_dense(tables: dict[str, pd.DataFrame], column: str, t: float) -> Verdict:
    return _median_claim(tables, column, t, rl=False)


def _matched_control(tables: dict[str, pd.DataFrame], column: str, t: float) -> Verdict:
    why = _missing(tables, "sparsity", ["run", "algorithm", "lr", "steps", "precision", column])
    if why:
        return NOT_MEASURED, why
    df = _rows(tables, "sparsity", [column])
    keys = [c for c in ("lr", "steps", "precision", "regime") if c in df]
    df["_key"] = ["\x1f".join(_key(v) for v in row) for row in df[keys].itertuples(index=False)]
    sft = _is_sft(df)
    # SFT from random init starts elsewhere: it is no control of an RL run.
    controls = df[sft & (df["run"].astype(str) != SFT_FROM_INIT)]
    failed, passed = [], []
    for rl in df[~sft].to_dict("records"):
        for control in controls[controls["_key"] == rl["_key"]].to_dict("records"):
            ok = rl[column] > control[column] + t
            (passed if ok else failed).append(f"{rl['run']} {_p(rl[column])} {'>' if ok else '<='} {control['run']} "
                                              f"{_p(control[column])} (lr {_lr(float(rl['lr']))})")
    if not failed and not passed:
        return NOT_MEASURED, f"no RL run has an SFT control with the same {', '.join(keys)}"
    n = len(failed) + len(passed)
    head = f"{len(passed)}/{n} matched pairs RL sparser: "
    return (FAILS if failed else HOLDS), head + _listing(failed + passed)


def _subnetwork_rows(tables: dict[str, pd.DataFrame], columns: list[str], empty: str) -> tuple[pd.DataFrame | None, str]:
    """The subnetwork table's runs with a number in every one of `columns`, or None and why not."""
    why = _missing(tables, "subnetwork", ["run", *columns])
    if why:
        return None, why
    df = _rows(tables, "subnetwork", columns)
    return (None, empty) if df.empty else (df, "")


def _per_run_verdict(ok: pd.Series, items: list[str], what: str) -> Verdict:
    """Holds when every run passes; the evidence lists the failing runs first."""
    listed = [item for item, _ in sorted(zip(items, ok), key=lambda x: x[1])]
    return (HOLDS if ok.all() else FAILS), f"{int(ok.sum())}/{len(ok)} runs {what}: " + _listing(listed)


def _subnetwork_recovers(tables: dict[str, pd.DataFrame], column: str, t: float) -> Verdict:
    df, why = _subnetwork_rows(tables, ["accuracy_full", "accuracy_subnetwork"], "no subnetwork run with both accuracies")
    if df is None:
        return NOT_MEASURED, why
    gap = df["accuracy_subnetwork"] - df["accuracy_full"]
    items = [f"{r.run} full {_p(r.accuracy_full)}, subnetwork {_p(r.accuracy_subnetwork)} ({g:+.2f} points)"
             for r, g in zip(df.itertuples(index=False), gap)]
    return _per_run_verdict((gap.abs() <= t) | (gap >= 0), items, "recover")


def _mask_beats_random(tables: dict[str, pd.DataFrame], column: str, t: float) -> Verdict:
    df, why = _subnetwork_rows(tables, ["accuracy_subnetwork", "accuracy_random_same"],
                               "no run with both the subnetwork and the same-density random mask scored")
    if df is None:
        return NOT_MEASURED, why
    ok = df["accuracy_subnetwork"] > df["accuracy_random_same"] + t
    items = [f"{r.run} subnetwork {_p(r.accuracy_subnetwork)} {'>' if k else '<='} random {_p(r.accuracy_random_same)}"
             for r, k in zip(df.itertuples(index=False), ok)]
    return _per_run_verdict(ok, items, "beat random")


def _subnetwork_same_weights(tables: dict[str, pd.DataFrame], column: str, t: float) -> Verdict:
    why = _missing(tables, "subnetwork", ["run"])
    if why:
        return NOT_MEASURED, why
    tolerances = {}
    for c in tables["subnetwork"].columns:
        match = re.fullmatch(r"equal tol=(\S+) \(%\)", c)
        if match:
            try:
                tolerances[c] = float(match.group(1))
            except ValueError:
                continue
    if not tolerances:
        return NOT_MEASURED, "subnetwork.csv has no 'equal tol=... (%)' column"
    equal = max(tolerances, key=tolerances.get)
    df = _rows(tables, "subnetwork", [equal])
    if df.empty:
        return NOT_MEASURED, f"no run with a value in {equal!r}"
    values = df.set_index("run")[equal]
    mean = float(values.mean())
    ok = mean >= t
    return (HOLDS if ok else FAILS,
            f"{equal.removesuffix(' (%)')}: mean {_p(mean)} {'>=' if ok else '<'} {t:g}% over {_n(len(values), 'run')} "
            f"(min {values.idxmin()} {_p(values.min())})")


def _overlap_above_random(tables: dict[str, pd.DataFrame], column: str, t: float) -> Verdict:
    numeric = ["o1", "random_o1", "o2", "random_o2"]
    why = _missing(tables, "overlap", ["run_1", "run_2", *numeric])
    if why:
        return NOT_MEASURED, why
    df = _rows(tables, "overlap", numeric)
    if df.empty:
        return NOT_MEASURED, "no pair of runs with overlaps"
    above = (df["o1"] > df["random_o1"]) & (df["o2"] > df["random_o2"])
    share = float(above.mean())
    below = [f"{r.run_1} vs {r.run_2} o1 {_p(r.o1)} (random {_p(r.random_o1)}), o2 {_p(r.o2)} "
             f"(random {_p(r.random_o2)})" for r in df[~above].itertuples(index=False)]
    evidence = (f"{int(above.sum())}/{len(df)} pairs ({100 * share:.1f}%) above random both ways; "
                f"mean o1 {_p(df['o1'].mean())} vs random {_p(df['random_o1'].mean())}, "
                f"mean o2 {_p(df['o2'].mean())} vs random {_p(df['random_o2'].mean())}")
    if below:
        evidence += "; not above: " + _listing(below, limit=3)
    return (HOLDS if share >= t else FAILS), evidence


def _full_rank(tables: dict[str, pd.DataFrame], column: str, t: float) -> Verdict:
    df = tables.get("rank")
    # The rank stage writes mean_rank_pct; rank_pct is the same measure under its per-tensor name.
    rank = next((c for c in ("rank_pct", "mean_rank_pct") if df is not None and c in df), "rank_pct")
    why = _missing(tables, "rank", ["run", "group", rank])
    if why:
        return NOT_MEASURED, why
    df = _rows(tables, "rank", [rank])
    df = df[~df["group"].astype(str).str.lower().isin(RANK_EXCLUDED)]
    if df.empty:
        return NOT_MEASURED, "no rank measured outside the embedding and lm_head"
    mean = float(df[rank].mean())
    low = df.loc[df[rank].idxmin()]
    ok = mean >= t
    return (HOLDS if ok else FAILS,
            f"{_n(len(df), '(run, group) row')} of {_n(df['run'].nunique(), 'run')}, embedding/lm_head excluded: "
            f"mean {_p(mean)} {'>=' if ok else '<'} {t:g}% (lowest {low['run']} {low['group']} {_p(low[rank])})")


def layer_spread(layers: pd.DataFrame) -> pd.DataFrame:
    """Per run: std (points, over the numbered layers) of each layer's mean sparsity over its module types.

    The population std (ddof=0): it describes the layers measured, it estimates nothing beyond them.
    Non-numbered rows (embed, lm_head, final_norm) are left out: the claim is about the transformer blocks.
    """
    df = layers.copy()
    df["_layer"] = pd.to_numeric(df["layer"], errors="coerce")
    df = df[df["_layer"].notna() & (df["_layer"] == df["_layer"].round())]
    modules = [c for c in layers.columns if c not in ("run", "layer")]
    values = df[modules].apply(pd.to_numeric, errors="coerce")
    df["_mean"] = values.mean(axis=1, skipna=True)
    rows = []
    for run, group in df.dropna(subset=["_mean"]).groupby("run", sort=True):
        if len(group) >= 2:
            rows.append({"run": run, "layers": len(group), "spread": float(group["_mean"].std(ddof=0)),
                         "min": float(group["_mean"].min()), "max": float(group["_mean"].max())})
    return pd.DataFrame(rows, columns=["run", "layers", "spread", "min", "max"])


def _layers_uniform(tables: dict[str, pd.DataFrame], column: str, t: float) -> Verdict:
    why = _missing(tables, "layers", ["run", "layer"])
    if why:
        return NOT_MEASURED, why
    spread = layer_spread(tables["layers"])
    if spread.empty:
        return NOT_MEASURED, "no run with sparsity measured in 2 or more numbered layers"
    worst = spread.loc[spread["spread"].idxmax()]
    ok = worst["spread"] <= t
    return (HOLDS if ok else FAILS,
            f"{_n(len(spread), 'run')}; largest spread {worst['run']} {worst['spread']:.2f} points "
            f"{'<=' if ok else '>'} {t:g} over {int(worst['layers'])} layers "
            f"(layer means {_p(worst['min'])} to {_p(worst['max'])})")


def _logp(row: pd.Series) -> str:
    parts = [f"{name} logp {row[c]:.2f}" for name, c in (("chosen", "chosen_logp"), ("rejected", "rejected_logp"))
             if c in row and pd.notna(row[c])]
    return f" ({', '.join(parts)})" if parts else ""


def _in_distribution(tables: dict[str, pd.DataFrame], column: str, t: float) -> Verdict:
    why = _missing(tables, "data", ["algorithm", "pairs", "sparsity"])
    if why:
        return NOT_MEASURED, why
    df = _rows(tables, "data", ["sparsity"])
    keys = ["algorithm", *[c for c in ("lr", "steps") if c in df]]
    logps = [c for c in ("chosen_logp", "rejected_logp") if c in df]
    for c in logps:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df["_key"] = ["\x1f".join(_key(v) for v in row) for row in df[keys].itertuples(index=False)]
    failed, passed = [], []
    for _, group in df.groupby("_key", sort=True):
        by_pairs = group.groupby(group["pairs"].astype(str))[["sparsity", *logps]].mean()
        if not {"on_policy", "off_policy"} <= set(by_pairs.index):
            continue
        on, off = by_pairs.loc["on_policy"], by_pairs.loc["off_policy"]
        ok = on["sparsity"] > off["sparsity"] + t
        where = str(group["algorithm"].iloc[0]) + (f" lr {_lr(float(group['lr'].iloc[0]))}" if "lr" in keys else "")
        (passed if ok else failed).append(
            f"{where}: on-policy {_p(on['sparsity'])}{_logp(on)} {'>' if ok else '<='} "
            f"off-policy {_p(off['sparsity'])}{_logp(off)}")
    if not failed and not passed:
        return NOT_MEASURED, "no algorithm trained on both on-policy and off-policy pairs at the same lr and steps"
    return (FAILS if failed else HOLDS), _listing(failed + passed, limit=4)


def _precision(tables: dict[str, pd.DataFrame], column: str, t: float) -> Verdict:
    why = _missing(tables, "precision", ["algorithm", "lr", "precision", "sparsity"])
    if why:
        return NOT_MEASURED, why
    df = _rows(tables, "precision", ["lr", "sparsity"])
    df = df[df["algorithm"].astype(str).str.lower() != "sft"]
    # Steps too when the table has them: a longer run in one precision would confound the comparison.
    keys = ["algorithm", "lr", *[c for c in ("steps",) if c in df]]
    df["_key"] = ["\x1f".join(_key(v) for v in row) for row in df[keys].itertuples(index=False)]
    failed, passed = [], []
    for _, group in df.groupby("_key", sort=True):
        by_precision = group.groupby(group["precision"].astype(str).str.lower())["sparsity"].mean()
        if not {"fp32", "bf16"} <= set(by_precision.index):
            continue
        fp32, bf16 = by_precision["fp32"], by_precision["bf16"]
        ok = bf16 - fp32 >= t
        (passed if ok else failed).append(f"{group['algorithm'].iloc[0]} lr {_lr(float(group['lr'].iloc[0]))}: "
                                          f"fp32 {_p(fp32)}, bf16 {_p(bf16)} ({bf16 - fp32:+.1f} points)")
    if not failed and not passed:
        return NOT_MEASURED, "no RL algorithm run in both fp32 and bf16 at the same lr and steps"
    return (FAILS if failed else HOLDS), _listing(failed + passed)


CHECKS: dict[str, Callable[[dict[str, pd.DataFrame], str, float], Verdict]] = {
    "rl-sparse": _rl_sparse, "sft-dense": _sft_dense, "matched-control": _matched_control,
    "subnetwork-recovers": _subnetwork_recovers, "mask-beats-random": _mask_beats_random,
    "subnetwork-same-weights": _subnetwork_same_weights, "overlap-above-random": _overlap_above_random,
    "full-rank": _full_rank, "layers-uniform": _layers_uniform, "in-distribution": _in_distribution,
    "precision": _precision,
}


# --- public API ----------------------------------------------------------------------------------------------

def compute_findings(tables: dict[str, pd.DataFrame], criterion: str,
                     thresholds: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per claim (in CLAIMS order): verdict, the numbers behind it, the threshold applied.

    `criterion` is the headline sparsity label (e.g. "tol=1e-05"): sparsity.csv's column `sparsity <criterion>`.
    An unknown threshold name is an error: a typo would otherwise silently leave the default in force.
    """
    unknown = sorted(set(thresholds or {}) - set(CLAIMS))
    if unknown:
        raise ValueError(f"unknown finding thresholds {unknown}; known: {sorted(CLAIMS)}")
    limits = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    column = f"sparsity {criterion}"
    rows = []
    for claim in CLAIMS:
        verdict, evidence = CHECKS[claim](tables, column, float(limits[claim]))
        rows.append({"claim": claim, "verdict": verdict, "evidence": evidence,
                     "threshold": THRESHOLD_TEXT[claim](float(limits[claim]))})
    return pd.DataFrame(rows, columns=COLUMNS)


def load_tables(folder: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """Every *.csv of `folder`, keyed by file stem; an absent folder is no tables (every claim not measured)."""
    return read_tables(sorted(Path(folder).glob("*.csv")))


def read_tables(paths: Iterable[str | os.PathLike]) -> dict[str, pd.DataFrame]:
    """The CSV tables at `paths`, keyed by file stem; a table with no rows is an empty frame."""
    tables = {}
    for path in map(Path, paths):
        try:
            tables[path.stem] = pd.read_csv(path)
        except pd.errors.EmptyDataError:  # an empty table is written as an empty file
            tables[path.stem] = pd.DataFrame()
    return tables


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def findings_markdown(df: pd.DataFrame) -> str:
    """The findings for people: what each verdict means, then one line per claim."""
    how = ("Each row is one claim of the paper (arXiv 2505.11711), checked against this study's tables. "
           f"The verdict is \"{HOLDS}\" or \"{FAILS}\" by the threshold shown, applied to the numbers quoted as "
           f"evidence (all percentages 0-100, accuracy in points); \"{NOT_MEASURED}\" means the tables of this "
           "configuration lack the runs or columns the claim needs, so no number is given. Sparsity is the % of "
           "parameter entries unchanged at the headline criterion. A verdict on a small model and few steps says "
           "what this configuration shows, not whether the paper's claim is true at its scale.")
    lines = ["# Findings: the paper's claims, checked", "", how, "",
             "| claim | statement | verdict | evidence | threshold |", "|---|---|---|---|---|"]
    for row in df.itertuples(index=False):
        lines.append(f"| {_cell(row.claim)} | {_cell(CLAIMS.get(row.claim, ''))} | {_cell(row.verdict)} | "
                     f"{_cell(row.evidence)} | {_cell(row.threshold)} |")
    return "\n".join(lines) + "\n"


def write_findings(df: pd.DataFrame, csv_path: str | os.PathLike, md_path: str | os.PathLike) -> None:
    """CSV for tools, Markdown for people; each written atomically."""
    write_text(df.to_csv(index=False), csv_path)
    write_text(findings_markdown(df), md_path)
