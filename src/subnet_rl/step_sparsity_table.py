"""The step-sparsity tables, from the records runs with `step_sparsity` keep in their checkpoints
(`step_sparsity_records`: entries whose bf16 value changed in each optimizer step, counted during training).

Nothing is recomputed from weights: the tables are the records, with the run's settings beside them.

- `step_sparsity`: one row per (run, optimizer step): entries whose bf16 value changed in the step, the
  compared entries, and the first as a % of the second;
- `step_sparsity_summary`: one row per run: its steps, the mean, median and maximum % changed per step,
  and the share of its steps in which no entry changed visibly (PULSE, arXiv 2602.03839, reports ~99%
  of per-step bf16 updates invisible: a mean near 1% changed). A table of its own rather than summary
  rows among the steps: each table holds one kind of row, so a reader of the CSV (and the figure) never
  has to tell a step from a summary, and neither table has columns empty for half its rows.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .stage_outputs import read_parquet, stage_error
from .step_sparsity_records import COLUMNS, FILE

#: the run settings each row carries (from the run's spec).
SETTINGS = ("algorithm", "precision", "lr")
#: the step table's column of the share changed.
CHANGED = "% changed"
#: the summary's columns, after the run and its settings.
SUMMARY = ("steps", "entries", "mean % changed", "median % changed", "max % changed",
           "steps with no visible change (%)")


def read_records(checkpoint: str | os.PathLike, steps: int, compared: int) -> pd.DataFrame:
    """A run's records (the file in its checkpoint folder), checked: one per optimizer step 1..`steps`, each
    count within 0..total, and the total the `compared` entries of the run's diff table (the recorder takes
    the diff's list of parameters, which its code hash does not cover: see `step_sparsity.compared_names`).
    A bad file names itself and the training rule that writes it."""
    path = Path(checkpoint) / FILE
    df = read_parquet(path, COLUMNS)
    if not df.empty and set(df["total"]) != {compared}:
        raise stage_error(path, f"counts {sorted(set(df['total']))[:3]} entries per step where the run's diff table "
                                f"compares {compared} (recorded by code with another list of compared parameters)")
    if df["step"].tolist() != list(range(1, steps + 1)):
        raise stage_error(path, f"holds records of steps {_steps(df)}, not one of each step 1..{steps} of the run")
    bad = df[(df["changed"] < 0) | (df["changed"] > df["total"]) | (df["total"] <= 0)]
    if not bad.empty:
        raise stage_error(path, f"has counts outside 0..total at steps {bad['step'].tolist()[:5]}")
    return df


def compared_entries(diff: pd.DataFrame) -> int:
    """The entries a diff table compares: its parameters' (what the sparsity is a share of, `diff.sparsity`)."""
    return int(diff.loc[diff["role"] == "param", "numel"].sum())


def _steps(df: pd.DataFrame) -> str:
    steps = df["step"].tolist()
    return "none" if not steps else f"{steps[:3]}{'...' if len(steps) > 3 else ''} ({len(steps)} rows)"


def step_sparsity_tables(records: dict[str, pd.DataFrame], runs: dict[str, dict]) -> dict[str, pd.DataFrame]:
    """{"step_sparsity": a row per run and step, "step_sparsity_summary": a row per run} of the runs in
    `records` (run -> its checked records); empty tables (with their columns) when no run recorded any."""
    steps, summary = [], []
    for run in sorted(records):
        spec = {c: runs[run][c] for c in SETTINGS}
        df = records[run]
        share = 100.0 * df["changed"] / df["total"]
        steps.append(pd.DataFrame({"run": run, **spec, "step": df["step"], "changed": df["changed"],
                                   "entries": df["total"], CHANGED: share}))
        summary.append({"run": run, **spec, "steps": len(df), "entries": int(df["total"].max()),
                        "mean % changed": share.mean(), "median % changed": share.median(),
                        "max % changed": share.max(),
                        "steps with no visible change (%)": 100.0 * (df["changed"] == 0).mean()})
    step_columns = ["run", *SETTINGS, "step", "changed", "entries", CHANGED]
    return {"step_sparsity": pd.concat(steps, ignore_index=True) if steps else pd.DataFrame(columns=step_columns),
            "step_sparsity_summary": pd.DataFrame(summary, columns=["run", *SETTINGS, *SUMMARY])}
