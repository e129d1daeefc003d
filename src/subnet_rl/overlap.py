"""Overlap of updated-entry sets between runs, against the random baseline of the same density.

For updated sets I1, I2 over n entries: o1 = |I1 ∩ I2| / |I1|, o2 = |I1 ∩ I2| / |I2|. Independent random
masks with densities d1 = 1 - s1 and d2 = 1 - s2 give o1 = d2, o2 = d1 and Jaccard d1 d2 / (d1 + d2 - d1 d2).
"""

from __future__ import annotations

import itertools
import os

import pandas as pd

from .masks import MaskFile, popcount
from .tensorfile import ChunkReader


def _ratio(num: float, den: float) -> float:
    return num / den if den else float("nan")


def overlap_stats(n: int, size1: int, size2: int, intersection: int) -> dict[str, float]:
    """All overlap figures from four counts (kept separate so the formulas are testable by hand)."""
    d1, d2 = size1 / n, size2 / n
    union = size1 + size2 - intersection
    return {
        "numel": n,
        "updated_1": size1,
        "updated_2": size2,
        "intersection": intersection,
        "sparsity_1": 1 - d1,
        "sparsity_2": 1 - d2,
        "o1": _ratio(intersection, size1),
        "o2": _ratio(intersection, size2),
        "jaccard": _ratio(intersection, union),
        "random_o1": d2,
        "random_o2": d1,
        "random_jaccard": _ratio(d1 * d2, d1 + d2 - d1 * d2),
    }


def mask_overlap(path1: str | os.PathLike, path2: str | os.PathLike, chunk_bytes: int = 64 * 2**20) -> dict[str, float]:
    """Stream two masks chunk by chunk (bitwise AND and popcount on packed bytes)."""
    m1, m2 = MaskFile(path1), MaskFile(path2)
    if m1.shapes != m2.shapes:
        raise ValueError(f"masks {path1} and {path2} cover different tensors or shapes; "
                         "overlap needs masks of the same architecture")
    if m1.criterion != m2.criterion:
        raise ValueError(f"masks {path1} ({m1.criterion}) and {path2} ({m2.criterion}) use different criteria")
    n = size1 = size2 = inter = 0
    with ChunkReader(chunk_bytes) as reader:
        for name in m1.names():
            n += m1.mask_numel(name)
            for p1, p2 in zip(m1.packed_chunks(name, reader, 0), m2.packed_chunks(name, reader, 1), strict=True):
                size1 += popcount(p1)
                size2 += popcount(p2)
                inter += popcount(p1 & p2)
    return overlap_stats(n, size1, size2, inter)


def pairwise_overlap(masks: dict[str, str | os.PathLike], groups: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Every unordered pair of runs, one row each; with `groups`, only pairs within a group (runs from
    the same start checkpoint: masks of different base models do not share entries)."""
    groups = groups or {"": list(masks)}
    pairs = [pair for runs in groups.values() for pair in itertools.combinations(sorted(runs), 2)]
    rows = [{"run_1": r1, "run_2": r2, **mask_overlap(masks[r1], masks[r2])} for r1, r2 in sorted(pairs)]
    columns = ["run_1", "run_2", *overlap_stats(1, 0, 0, 0)]
    return pd.DataFrame(rows, columns=columns)
