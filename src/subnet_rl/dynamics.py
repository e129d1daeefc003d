"""Training dynamics (paper section 6): how the updated set grows over a run, from its snapshots.

For each snapshot (every `save_every` steps) and the final checkpoint: the sparsity against the start
and the share of entries that changed since the previous snapshot. Each entry is then classified once:
never updated (equal to its start value at every snapshot), updated then back (changed at some snapshot,
equal at the end) or in the final subnetwork (changed at the end). The three shares sum to the total.
Snapshots are the only times looked at: an entry that moved and came back between two snapshots counts
as never updated, so a finer `save_every` can only move entries from "never" to "back".
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .checkpoints import Checkpoint
from .diff import COMPARED, Criterion, pair_tensors, stream_compare


def changed_entries(before: str | os.PathLike, after: str | os.PathLike, criterion: Criterion) -> np.ndarray:
    """Flat bool array over the compared parameters (in the `before` checkpoint's order): True = changed."""
    pairs = [p for p in pair_tensors(Checkpoint(before), Checkpoint(after))
             if p.role == "param" and p.status in COMPARED]
    parts = [~result[criterion] for _, result in stream_compare(pairs, [criterion], want_masks=True)]
    return np.concatenate([np.ravel(p) for p in parts]) if parts else np.zeros(0, dtype=bool)


def snapshots_of(checkpoint: str | os.PathLike, folder: str = "snapshots") -> list[tuple[int, Path]]:
    """(step, path) of a run's snapshots, in step order: the folders step-NNNNNN that training writes under
    the checkpoint's `snapshots/` (`training.SNAPSHOTS`, not imported: the analyses do not load torch)."""
    root = Path(checkpoint) / folder
    found = [(int(p.name.removeprefix("step-")), p) for p in root.glob("step-*") if p.is_dir()] if root.is_dir() else []
    return sorted(found)


def training_dynamics(start: str | os.PathLike, checkpoints: list[tuple[int, str | os.PathLike]],
                      criterion: Criterion) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per checkpoint (step, path; the last one the run's final checkpoint): sparsity against `start` and the
    % changed since the previous checkpoint (the start for the first); and the never/back/final split (%)."""
    if not checkpoints:
        raise ValueError("training dynamics need at least the final checkpoint")
    rows, ever, previous, changed = [], None, start, None
    for step, path in checkpoints:
        changed = changed_entries(start, path, criterion)
        ever = changed.copy() if ever is None else ever | changed
        # Against the start for the first checkpoint: that comparison was just made.
        moved = changed if previous == start else changed_entries(previous, path, criterion)
        rows.append({"step": step, "sparsity": 100.0 * (1 - changed.mean()),
                     "changed_since_previous": 100.0 * moved.mean()})
        previous = path
    final = changed
    split = {"never": 100.0 * (~ever).mean(), "back": 100.0 * (ever & ~final).mean(), "final": 100.0 * final.mean(),
             "entries": int(final.size)}
    return pd.DataFrame(rows), split
