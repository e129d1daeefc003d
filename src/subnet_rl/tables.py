"""The study's final tables (Markdown for people, CSV for tools), built from the stage outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from .atomic import write_text
from .diff import sparsity

RUN_COLUMNS = ["algorithm", "regime", "lr", "steps", "precision", "seed"]


def _pct(x: float) -> float:
    return 100.0 * x


def sparsity_table(runs: dict[str, dict], run_diffs: dict[str, pd.DataFrame], accuracy: dict[tuple[str, str], float],
                   warmup: dict | None = None, warmup_diff: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per run (and SFT-from-init): accuracy before/after and sparsity (%) at each criterion."""
    rows = []
    start_acc = accuracy[("base", "start")]
    if warmup is not None and warmup_diff is not None:
        rows.append({"run": "sft-from-init", "algorithm": "sft", "regime": "warmup", "lr": warmup["lr"],
                     "steps": warmup["steps"], "precision": "fp32", "seed": warmup.get("seed", 0),
                     "accuracy_before": _pct(accuracy[("base", "init")]), "accuracy_after": _pct(start_acc),
                     **{f"sparsity {k}": _pct(v) for k, v in sparsity(warmup_diff).items()}})
    for name in sorted(runs, key=lambda r: (runs[r]["regime"], runs[r]["algorithm"], r)):
        spec = runs[name]
        rows.append({"run": name, **{c: spec[c] for c in RUN_COLUMNS},
                     "accuracy_before": _pct(start_acc), "accuracy_after": _pct(accuracy[("full", name)]),
                     **{f"sparsity {k}": _pct(v) for k, v in sparsity(run_diffs[name]).items()}})
    return pd.DataFrame(rows)


def subnetwork_table(runs: dict[str, dict], accuracy: dict[tuple[str, str], float],
                     subnet_diffs: dict[str, pd.DataFrame], trainable: dict[str, float]) -> pd.DataFrame:
    """Paper Table 3: full vs subnetwork accuracy, and % of entries equal between the two models."""
    rows = []
    for name in sorted(subnet_diffs):
        spec = runs[name]
        equal = {f"equal {k} (%)": _pct(v) for k, v in sparsity(subnet_diffs[name]).items() if k.startswith("tol=")}
        rows.append({"run": name, **{c: spec[c] for c in ("algorithm", "regime", "lr", "precision")},
                     "subnetwork (% of entries)": _pct(trainable[name]),
                     "accuracy_start": _pct(accuracy[("base", "start")]),
                     "accuracy_full": _pct(accuracy[("full", name)]),
                     "accuracy_subnetwork": _pct(accuracy[("subnet", name)]), **equal})
    return pd.DataFrame(rows)


def overlap_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """Paper Table 4 for every pair of runs: o1, o2, Jaccard and their random baselines (%)."""
    pct = ["sparsity_1", "sparsity_2", "o1", "random_o1", "o2", "random_o2", "jaccard", "random_jaccard"]
    out = pairs[["run_1", "run_2", *pct]].copy()
    out[pct] = out[pct] * 100.0
    return out


def trainable_fraction(subnet_checkpoint: str | os.PathLike) -> float:
    """Share of entries a subnetwork run trained, as recorded by the training stage."""
    counts = json.loads((Path(subnet_checkpoint) / "training.json").read_text())["subnetwork"]
    return counts["trainable"] / counts["total"]


def write_table(df: pd.DataFrame, md_path: str | os.PathLike, csv_path: str | os.PathLike, title: str) -> None:
    """Markdown with 2 decimals (learning rates in scientific notation), CSV at full precision."""
    shown = df.assign(lr=df["lr"].map(lambda v: f"{v:.0e}")) if "lr" in df else df
    as_text = [list(df.columns).index("lr")] if "lr" in df else []
    body = shown.to_markdown(index=False, floatfmt=".2f", disable_numparse=as_text) if not df.empty else "_(no rows)_"
    write_text(f"# {title}\n\n{body}\n", md_path)
    write_text(df.to_csv(index=False), csv_path)


def pairs_table(pairs: dict[str, dict], diffs: dict[str, pd.DataFrame], downloads: dict[str, dict]) -> pd.DataFrame:
    """Paper Tables 1/6: our sparsity per criterion beside the published one, and what was compared."""
    from .diff import skipped, sparsity
    from .jobs import download_slug

    def described(ref: dict) -> str:
        record = downloads.get(download_slug(ref)) if ref["source"] == "hub" else None
        return f"{ref['name']}@{record['revision'][:12]}" if record else ref["name"]

    rows = []
    for name in sorted(pairs):
        pair, ours = pairs[name], sparsity(diffs[name])
        row = {"pair": name, "algorithm": pair.get("algorithm", ""), "before": described(pair["before"]),
               "after": described(pair["after"])}
        for label, value in ours.items():
            row[f"ours {label}"] = _pct(value)
            if label in pair.get("published", {}):
                row[f"paper {label}"] = pair["published"][label]
        row["tensors not fully compared"] = len(skipped(diffs[name]))
        rows.append(row)
    return pd.DataFrame(rows)
