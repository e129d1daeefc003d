"""Masks of updated entries from a checkpoint pair, computed by the streaming diff engine."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .diff import DEFAULT_CHUNK_BYTES, Criterion, compared_params, stream_compare
from .masks import mask_writer, pack


def extract_masks(before: str | os.PathLike, after: str | os.PathLike, criterion: Criterion,
                  out: str | os.PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES, workers: int | None = None,
                  resized: str = "skip") -> dict:
    """Write the updated-entry mask of a checkpoint pair, streaming.

    `out` ending in .safetensors gives one file; any other path a folder with one mask file per shard
    of `before`. Masks cover parameters that were compared (resized tensors: skipped, or their shared rows
    with resized="shared_rows").
    """
    pairs = compared_params(before, after, resized)
    single = str(out).endswith(".safetensors")
    groups: dict[str, list] = {}
    for pair in pairs:
        groups.setdefault(Path(out).name if single else pair.before.file.name, []).append(pair)
    updated = total = 0
    with atomic_path(out, directory=not single) as tmp:
        for filename, group in groups.items():
            writer = mask_writer(tmp if single else tmp / filename, {p.name: p.compared_shape for p in group},
                             criterion.label)
            for pair, result in stream_compare(group, [criterion], chunk_bytes, want_masks=True, workers=workers):
                changed = ~result[criterion]
                updated += int(np.count_nonzero(changed))
                writer.write(pair.name, pack(changed))
            total += sum(p.numel for p in group)
            writer.close()
    return {"updated": updated, "total": total, "density": updated / total if total else float("nan")}
