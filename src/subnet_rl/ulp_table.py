"""The ulp tables from the `ulp` stage's per-tensor counts (results/ulp/<run>.parquet) and the runs' diff tables.

Apart from `ulp` (the stage), so that editing a table's layout reruns the tables, not the streaming over
every checkpoint. Nothing here is recomputed from weights: the histogram and the share below one half-ulp
are the stage's counts summed, and the bf16 sparsity beside them is the diff table's (`diff.sparsity`, as
the sparsity table reads it).

- `ulp`: one row per (fp32 run, bin): entries and % of its finite entries in each bin of half bf16 ulps;
- `ulp_summary`: one row per run: the share below one half-ulp (what a bf16 cast rounds back) beside the
  measured `sparsity bf16_bitwise`, and the mean effective step mean |Δ| / (lr × steps). A run with bf16
  weights gets its row with those left empty (NaN) and a note: its stored updates are already rounded to
  bf16, so they have no size below half an ulp to measure.
"""

from __future__ import annotations

import math

import pandas as pd

from .diff import sparsity
from .ulp import BINS, COUNTS

#: The run settings each ulp row carries (from the run's spec).
SETTINGS = ("algorithm", "regime", "lr", "steps", "precision", "seed")
#: The histogram's run settings (the rest are the summary's).
HISTOGRAM_SETTINGS = ("algorithm", "regime", "lr")
#: The summary's column of the mean effective step, mean |Δ| / (lr × steps) (no "|": it would split a Markdown cell).
STEP = "mean abs update / (lr × steps)"
#: The note of a run whose weights are bf16.
BF16_NOTE = "not applicable: bf16 weights (stored updates already rounded to bf16)"


def _pct(count: float, total: float) -> float:
    return 100.0 * count / total if total else math.nan


def ulp_tables(ulps: dict[str, pd.DataFrame], diffs: dict[str, pd.DataFrame],
               runs: dict[str, dict]) -> dict[str, pd.DataFrame]:
    """{"ulp": the histogram, "ulp_summary": the per-run account} of every run in `diffs`; `ulps` holds the
    stage's table of each run with fp32 weights (one missing, or one for a bf16 run, is an error)."""
    fp32 = {run for run in diffs if runs[run]["precision"] == "fp32"}
    if fp32 != set(ulps):
        raise ValueError(f"ulp counts are for the runs with fp32 weights ({sorted(fp32)}), given {sorted(ulps)}")
    bins, summary = [], []
    for run in sorted(diffs, key=lambda r: (runs[r]["regime"], runs[r]["algorithm"], r)):
        spec = {c: runs[run][c] for c in SETTINGS}
        measured = 100.0 * sparsity(diffs[run]).get("bf16_bitwise", math.nan)
        if run not in ulps:
            summary.append({"run": run, **spec, "entries": math.nan, "below half-ulp (%)": math.nan,
                            "sparsity bf16_bitwise": measured, STEP: math.nan,
                            "zero or subnormal start (%)": math.nan, "non-finite": math.nan, "note": BF16_NOTE})
            continue
        totals = ulps[run][[*COUNTS, *BINS]].sum()
        entries = int(totals["numel"] - totals["non_finite"])
        bins += [{"run": run, **{c: spec[c] for c in HISTOGRAM_SETTINGS}, "bin": label, "entries": int(totals[label]),
                  "% of entries": _pct(totals[label], entries)} for label in BINS]
        scale = spec["lr"] * spec["steps"]
        summary.append({"run": run, **spec, "entries": entries,
                        "below half-ulp (%)": _pct(totals["below_half_ulp"], entries),
                        "sparsity bf16_bitwise": measured,
                        STEP: totals["sum_abs_delta"] / entries / scale
                        if entries and scale else math.nan,
                        "zero or subnormal start (%)": _pct(totals["zero_or_subnormal_start"], entries),
                        "non-finite": int(totals["non_finite"]), "note": ""})
    table = pd.DataFrame(summary)
    if not table.empty:  # counts stay integers beside a bf16 run's empty cells (not "1234.00")
        table[["entries", "non-finite"]] = table[["entries", "non-finite"]].astype("Int64")
    return {"ulp": pd.DataFrame(bins), "ulp_summary": table}
