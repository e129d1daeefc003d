"""Training dynamics (paper section 6): how the updated set grows over a run, from its snapshots.

For each snapshot (every `save_every` steps) and the final checkpoint: the sparsity against the start
and the share of entries that changed since the previous snapshot. Each entry is then classified once:
never updated (equal to its start value at every snapshot), updated then back (changed at some snapshot,
equal at the end) or in the final subnetwork (changed at the end). The three shares sum to the total.
Snapshots are the only times looked at: an entry that moved and came back between two snapshots counts
as never updated, so a finer `save_every` can only move entries from "never" to "back".

Memory is bounded by one tensor, never by the model or the number of snapshots (the diff engine's rule):
the run is walked tensor by tensor, each compared parameter read from the start, every snapshot and the
final checkpoint in turn, with the diff engine's own kernel (`stream_compare`), and only counts kept.

The start -> final comparison is what the `diff` and `mask` stages already wrote. With the run's diff
table, the final row's sparsity is that table's count at the dynamics criterion. With the run's mask,
and only where the mask stage used the dynamics criterion, the final changed set is read from the mask
instead of recomputed. A mask of another criterion (config `mask:` differs from `analyses.criterion`)
is not used: every row and the never/back/final split are then counted under the one dynamics criterion,
the final set included (compared start -> final like a snapshot), so "back" and "final" stay defined
against the same notion of "changed" as the rows, which is what the dynamics table reports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .checkpoints import Checkpoint
from .diff import DEFAULT_CHUNK_BYTES, Criterion, TensorPair, compared_params, stream_compare
from .masks import MaskFile
from .stage_outputs import read_parquet, stage_error


def changed_entries(pair: TensorPair, criterion: Criterion, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                    workers: int | None = None) -> np.ndarray:
    """Flat bool array over one compared tensor pair: True = changed. The diff engine's chunk masks are
    written into one array, so a tensor is held once (plus a chunk), not as a list of parts and a copy."""
    changed = np.empty(pair.numel, dtype=bool)
    at = 0
    for _, result in stream_compare([pair], [criterion], chunk_bytes, want_masks=True, workers=workers):
        unchanged = result[criterion]
        np.logical_not(unchanged, out=changed[at:at + unchanged.size])
        at += unchanged.size
    return changed


def snapshots_of(checkpoint: str | os.PathLike, folder: str = "snapshots") -> list[tuple[int, Path]]:
    """(step, path) of a run's snapshots, in step order: the folders step-NNNNNN that training writes under
    the checkpoint's `snapshots/` (`training.SNAPSHOTS`, not imported: the analyses do not load torch)."""
    root = Path(checkpoint) / folder
    found = [(int(p.name.removeprefix("step-")), p) for p in root.glob("step-*") if p.is_dir()] if root.is_dir() else []
    return sorted(found)


@dataclass
class _Counts:
    """Entries changed at one checkpoint: against the start, and since the previous checkpoint."""

    changed: int = 0
    moved: int = 0


def _pairs_by_name(before: Checkpoint, after: Checkpoint, names: dict[str, int], where: str) -> dict[str, TensorPair]:
    """The compared parameters of before -> after by name; they must be the final comparison's (`names`,
    with their sizes), or the per-checkpoint shares would be of different totals."""
    pairs = {p.name: p for p in compared_params(before, after)}
    if {n: p.numel for n, p in pairs.items()} != names:
        differ = sorted(set(pairs).symmetric_difference(names)
                        or {n for n in names if pairs[n].numel != names[n]})
        raise ValueError(f"{where} does not compare the same parameters as the start -> final checkpoint "
                         f"(differing: {differ[:5]}); a snapshot must have the final checkpoint's tensors")
    return pairs


def _final_unchanged(diff: str | os.PathLike, criterion: Criterion, total: int) -> int:
    """Unchanged parameter entries at `criterion` in the run's diff table (start -> final)."""
    table = read_parquet(diff, ("role", "numel", criterion.column))
    params = table[table["role"] == "param"]
    if int(params["numel"].sum()) != total:
        raise stage_error(diff, f"compares {int(params['numel'].sum())} parameter entries where the dynamics "
                                f"compare {total} (a resized tensor, or a table of another run)")
    return int(params[criterion.column].sum())


def _usable_mask(mask: str | os.PathLike | None, criterion: Criterion, names: dict[str, int]) -> MaskFile | None:
    """The run's mask where it is the final changed set at `criterion` (see the module docstring), else None."""
    if mask is None:
        return None
    found = MaskFile(mask)
    if found.criterion != criterion.label:
        return None
    wrong = [n for n, numel in names.items() if n not in found.shapes or found.mask_numel(n) != numel]
    if wrong:
        raise stage_error(mask, f"does not cover the run's compared parameters ({wrong[:5]})")
    return found


def _count_tensor(name: str, vs_start: list[dict[str, TensorPair]], vs_previous: list[dict[str, TensorPair] | None],
                  mask: MaskFile | None, criterion: Criterion, counts: list[_Counts], chunk_bytes: int,
                  workers: int | None) -> int:
    """Add one tensor's changes at every checkpoint to `counts`; return how many of its entries ever
    changed. Held at once: this tensor's changed, moved and ever-changed arrays, nothing of the others."""
    ever = None
    for i, count in enumerate(counts):
        if i == len(counts) - 1 and mask is not None:
            changed = mask.mask(name).reshape(-1)
        else:
            changed = changed_entries(vs_start[i][name], criterion, chunk_bytes, workers)
        # Against the start for the first checkpoint: that comparison was just made.
        moved = changed if i == 0 else changed_entries(vs_previous[i][name], criterion, chunk_bytes, workers)
        count.changed += int(np.count_nonzero(changed))
        count.moved += int(np.count_nonzero(moved))
        ever = changed.copy() if ever is None else np.logical_or(ever, changed, out=ever)
    return int(np.count_nonzero(ever))


def training_dynamics(start: str | os.PathLike, checkpoints: list[tuple[int, str | os.PathLike]],
                      criterion: Criterion, final_diff: str | os.PathLike | None = None,
                      final_mask: str | os.PathLike | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                      workers: int | None = None) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per checkpoint (step, path; the last one the run's final checkpoint): sparsity against `start` and the
    % changed since the previous checkpoint (the start for the first); and the never/back/final split (%).

    `final_diff` (the run's diff table) and `final_mask` (its mask) are the start -> final comparison the
    workflow already made: the final sparsity is the table's, and the mask is the final changed set when
    its criterion is `criterion` (else the final set is compared like a snapshot). The table's count must
    agree with the final set, or the inputs are of different runs (or stale).
    """
    if not checkpoints:
        raise ValueError("training dynamics need at least the final checkpoint")
    begin = Checkpoint(start)
    opened = [(step, Checkpoint(path)) for step, path in checkpoints]
    names = {p.name: p.numel for p in compared_params(begin, opened[-1][1])}
    total = sum(names.values())
    if not total:
        raise ValueError(f"{start} and {checkpoints[-1][1]} share no parameter entries to compare")
    vs_start = [_pairs_by_name(begin, ckpt, names, f"{start} -> {ckpt.path}") for _, ckpt in opened]
    vs_previous = [None, *(_pairs_by_name(a, b, names, f"{a.path} -> {b.path}")
                           for (_, a), (_, b) in zip(opened, opened[1:]))]
    # The stage outputs are read first: a bad one fails the job before the snapshots are walked.
    in_table = None if final_diff is None else total - _final_unchanged(final_diff, criterion, total)
    mask = _usable_mask(final_mask, criterion, names)
    counts = [_Counts() for _ in opened]
    ever_count = sum(_count_tensor(name, vs_start, vs_previous, mask, criterion, counts, chunk_bytes, workers)
                     for name in names)
    final_changed = counts[-1].changed
    if in_table is not None and in_table != final_changed:
        raise stage_error(final_diff, f"counts {in_table} entries changed at {criterion.label} where the final "
                                      f"{'mask' if mask else 'checkpoint'} gives {final_changed}")
    rows = [{"step": step, "sparsity": 100.0 * (1 - count.changed / total),
             "changed_since_previous": 100.0 * (count.moved / total)} for (step, _), count in zip(opened, counts)]
    # The final set is within the ever-changed set (a change at the end is a change at some checkpoint).
    split = {"never": 100.0 * ((total - ever_count) / total), "back": 100.0 * ((ever_count - final_changed) / total),
             "final": 100.0 * (final_changed / total), "entries": total}
    return pd.DataFrame(rows), split
