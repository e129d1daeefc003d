"""The diff table: one row per tensor name of a checkpoint pair, with what was compared or skipped and
the unchanged count of every criterion (the `diff` rule's parquet, the `subnet-rl diff` output)."""

from __future__ import annotations

import os
import sys

from ..checkpoints import Checkpoint
from .criteria import Criterion, default_criteria
from .pairing import COMPARED, TensorPair, pair_tensors
from .streaming import DEFAULT_CHUNK_BYTES, stream_compare
from .taxonomy import describe


def _row(pair: TensorPair, counts: dict[Criterion, int], criteria: list[Criterion]) -> dict:
    a, b = pair.before, pair.after
    dtype = lambda e: e.dtype if e is not None else None  # noqa: E731
    return {
        "name": pair.name, **describe(pair.name), "role": pair.role, "status": pair.status,
        "shape": list(a.shape) if a is not None else None, "shape_after": list(b.shape) if b is not None else None,
        "dtype": dtype(a), "dtype_after": dtype(b), "numel": pair.numel, "numel_skipped": pair.numel_skipped,
        "tied_to": pair.tied_to,
        **{c.column: counts.get(c, 0) for c in criteria},
    }


def diff_rows(before: str | os.PathLike, after: str | os.PathLike, criteria: list[Criterion] | None = None,
              chunk_bytes: int = DEFAULT_CHUNK_BYTES, workers: int | None = None, resized: str = "skip",
              progress: bool = False) -> list[dict]:
    """One dict per tensor name: what was compared or skipped, and unchanged counts per criterion.

    Every compared tensor is counted, scales and buffers too (their rows say so; `summary.sparsity`
    counts parameters only). With `progress`, a tqdm bar over tensors goes to stderr (a job's log): a
    large pair takes minutes.
    """
    from tqdm import tqdm

    criteria = criteria or default_criteria()
    pairs = pair_tensors(Checkpoint(before), Checkpoint(after), resized)
    compared = [p for p in pairs if p.status in COMPARED]
    counts: dict[str, dict[Criterion, int]] = {p.name: dict.fromkeys(criteria, 0) for p in pairs}
    with tqdm(total=len(compared), unit="tensor", desc="diff", disable=not progress, mininterval=5,
              file=sys.stderr) as bar:
        started: set[str] = set()
        for pair, result in stream_compare(compared, criteria, chunk_bytes, workers=workers):
            if pair.name not in started:
                started.add(pair.name)
                bar.update(1)
            for criterion, value in result.items():
                counts[pair.name][criterion] += value
    return [_row(pair, counts[pair.name], criteria) for pair in pairs]


def diff_checkpoints(before: str | os.PathLike, after: str | os.PathLike, criteria: list[Criterion] | None = None,
                     chunk_bytes: int = DEFAULT_CHUNK_BYTES, workers: int | None = None, resized: str = "skip",
                     progress: bool = False):
    """`diff_rows` as a DataFrame (layer as a nullable integer)."""
    import pandas as pd

    df = pd.DataFrame(diff_rows(before, after, criteria, chunk_bytes, workers, resized, progress))
    df["layer"] = df["layer"].astype("Int64")
    return df
