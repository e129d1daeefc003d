"""The record a run with `step_sparsity` keeps beside its checkpoint: one row per optimizer step, how many
compared entries changed their bf16 value in that step, of how many.

Its own module, read by both the recorder (`step_sparsity`, torch, part of training) and the tables
(`step_sparsity_table`), so that neither is part of the other's code hash: editing a table's layout does
not retrain a run, and the two agree on the file by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

#: the file in the run's checkpoint folder.
FILE = "step_sparsity.parquet"
#: its columns: the optimizer step (global_step, 1-based), entries whose bf16 value changed in it, the
#: compared entries, and the first as a % of the second.
COLUMNS = ("step", "changed", "total", "changed_pct")


def records_frame(records: Iterable[Sequence[int]]) -> pd.DataFrame:
    """The file's table from (step, changed, total) records, in step order."""
    df = pd.DataFrame([tuple(int(v) for v in r) for r in records], columns=list(COLUMNS[:3]), dtype="int64")
    df["changed_pct"] = 100.0 * df["changed"] / df["total"].where(df["total"] > 0)
    return df.sort_values("step", ignore_index=True)
