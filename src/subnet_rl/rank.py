"""Rank of the update ΔW = W_after - W_before of every 2-D weight (paper Table 2: updates are nearly full
rank), with two measures that say more than a rank that is almost always full.

- numerical rank: singular values above rtol x σ_max (torch.linalg.matrix_rank's default rtol,
  max(m, n) x float32 eps, when the config names none), as % of min(m, n);
- stable rank ‖ΔW‖²_F / ‖ΔW‖²₂ (how many directions carry the energy; 1 for a rank-1 update);
- effective rank exp(H(p)), p = σ / Σσ (Roy & Vetterli 2007).

Streamed tensor by tensor (one matrix pair in memory), on the GPU when there is one. A zero update has
rank 0 and no stable or effective rank (NaN: not computable, never a made-up number).
"""

from __future__ import annotations

import math
import os

import numpy as np

from .diff import compared_params, describe
from .floats import to_float32
from .tensorfile import ChunkReader, TensorEntry


def _matrix(reader: ChunkReader, entry: TensorEntry, rows: int, slot: int) -> np.ndarray:
    """The first `rows` rows of a stored tensor as float32 (a copy: the reader's buffer is reused)."""
    numel = rows * int(np.prod(entry.shape[1:], dtype=np.int64))
    return to_float32(reader.read(entry, 0, numel, slot), entry.dtype).reshape(rows, *entry.shape[1:]).copy()


def update_rank(delta, rtol: float | None = None) -> dict[str, float]:
    """Rank measures of one update matrix (a torch tensor)."""
    import torch

    singular = torch.linalg.svdvals(delta.to(torch.float32)).double()
    max_rank = min(delta.shape)
    top = float(singular[0]) if singular.numel() else 0.0
    if top == 0.0:
        return {"rank": 0, "max_rank": max_rank, "rank_pct": 0.0, "stable_rank": math.nan, "effective_rank": math.nan}
    tolerance = (rtol if rtol is not None else max(delta.shape) * torch.finfo(torch.float32).eps) * top
    rank = int((singular > tolerance).sum())
    p = singular / singular.sum()
    p = p[p > 0]
    return {"rank": rank, "max_rank": max_rank, "rank_pct": 100.0 * rank / max_rank,
            "stable_rank": float((singular**2).sum() / top**2),
            "effective_rank": float(torch.exp(-(p * p.log()).sum()))}


def checkpoint_ranks(before: str | os.PathLike, after: str | os.PathLike, rtol: float | None = None,
                     device: str | None = None) -> list[dict]:
    """One row per compared 2-D parameter: name, module description, shape and its rank measures."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    pairs = [p for p in compared_params(before, after) if len(p.before.shape) == 2]
    rows = []
    with ChunkReader(0) as reader:  # buffers grow to the largest matrix: one pair in memory at a time
        for pair in pairs:
            a = torch.from_numpy(_matrix(reader, pair.before, pair.rows, slot=0))
            b = torch.from_numpy(_matrix(reader, pair.after, pair.rows, slot=1))
            delta = (b - a).to(device)
            rows.append({"name": pair.name, **describe(pair.name), "shape": list(delta.shape),
                         **update_rank(delta, rtol)})
    return rows


def rank_summary(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Mean rank (% of the maximum), stable and effective rank per module group; embeddings separately."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    return {group: {"matrices": len(members),
                    "mean_rank_pct": float(np.mean([m["rank_pct"] for m in members])),
                    "mean_stable_rank": float(np.nanmean([m["stable_rank"] for m in members]))
                    if any(not math.isnan(m["stable_rank"]) for m in members) else math.nan,
                    "mean_effective_rank": float(np.nanmean([m["effective_rank"] for m in members]))
                    if any(not math.isnan(m["effective_rank"]) for m in members) else math.nan}
            for group, members in sorted(groups.items())}
