"""The ulp account of a run with fp32 weights: each entry's total update |after - before| in units of half a
bf16 ulp of its start value, as a histogram per tensor.

Why: an entry stays unchanged in bf16 when its total update is below half a bf16 ulp of its value (it rounds
back to where it started), so "RL updates few entries" and "bf16 rounds small updates away" can only be told
apart by measuring updates in those units (issue 17; PULSE, arXiv 2602.03839).

Units. The bf16 ulp of a value x is the gap between adjacent bf16 numbers at |x|: 2^(e - 7) for a normal x
with exponent e (bf16 keeps 7 fraction bits), so half an ulp is 2^(e - 8); at x = 1.0 the ulp is 2^-7 and an
update of 2^-9 is 0.5 half-ulps. Zero and subnormal starts (|x| < 2^-126) take the subnormal spacing of
bf16, 2^-133 (the gap from 0 to the smallest bf16 subnormal; bf16 has fp32's exponent range), so half an ulp
is 2^-134: such a start is counted apart as well (`zero_or_subnormal_start`), as any update of it is many
half-ulps (bf16 stores small values next to zero). The ulp is the gap above |x|: at a power of two an update
toward zero meets a gap half as wide, and an update of exactly one half-ulp is a tie (round to even), so the
share below one half-ulp is exactly the share a bf16 cast rounds back only for a bf16-representable start
away from those two cases; an fp32 start not representable in bf16 rounds on its own (see docs/methods.md).

Entries with a non-finite start or end (inf, NaN) have no update size: counted (`non_finite`), and left out
of every other count. Streamed chunk by chunk with the diff engine's readers over `compared_params` (so the
entries are the diff's), NumPy only: memory is bounded by a chunk, whatever the model.
"""

from __future__ import annotations

import os
from itertools import pairwise

import numpy as np

from .diff import DEFAULT_CHUNK_BYTES, compared_params, describe
from .floats import to_float32
from .tensorfile import ChunkReader, element_chunks

#: Upper edges of the positive bins, in half-ulps: (0, 1/64], (1/64, 1/32], ..., (32, 64]; then > 64.
EDGES = tuple(2.0**k for k in range(-6, 7))
#: Stored dtypes a start may have (widened to fp32 exactly); the weights after training must be fp32.
START_DTYPES = ("BF16", "F16", "F32")


def _fraction(value: float) -> str:
    return f"1/{round(1 / value)}" if value < 1 else f"{value:g}"


#: The histogram's bins by label, in order: no update, then log-spaced bins of half-ulps.
BINS = ("0", f"(0, {_fraction(EDGES[0])}]",
        *(f"({_fraction(lo)}, {_fraction(hi)}]" for lo, hi in pairwise(EDGES)), f"> {_fraction(EDGES[-1])}")
#: Columns of a run's ulp table (results/ulp/<run>.parquet), one row per compared parameter, besides BINS.
COUNTS = ("numel", "non_finite", "zero_or_subnormal_start", "below_half_ulp", "sum_abs_delta")


def bf16_half_ulp(start: np.ndarray) -> np.ndarray:
    """Half the bf16 ulp at each float32 start value, as float64: 2^(e - 8) for exponent e, and 2^-134 for
    zero and subnormal starts (bf16's subnormal spacing 2^-133, halved); NaN for inf and NaN starts."""
    biased = ((np.ascontiguousarray(start, dtype=np.float32).view(np.uint32) >> 23) & 0xFF).astype(np.int32)
    half = np.ldexp(1.0, np.maximum(biased, 1) - 127 - 8)
    return np.where(biased == 0xFF, np.nan, half)


def half_ulps(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """|after - before| in half bf16 ulps of `before` (float32 arrays; float64 result, NaN where either side
    is not finite). The difference is taken in float64 and scaled by a power of two, so it is exact but for
    ends more than 2^29 apart in magnitude, far above every bin edge."""
    return _abs_delta(before, after) / bf16_half_ulp(before)


def _abs_delta(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return np.abs(after.astype(np.float64) - before.astype(np.float64))


def _chunk_counts(before: np.ndarray, after: np.ndarray) -> dict[str, float]:
    """The counts of one chunk: the histogram over BINS and the COUNTS but numel."""
    finite = np.isfinite(before) & np.isfinite(after)
    before, after = before[finite], after[finite]
    delta = _abs_delta(before, after)
    units = delta / bf16_half_ulp(before)
    moved = units[units > 0]
    bins = np.bincount(np.searchsorted(EDGES, moved, side="left"), minlength=len(EDGES) + 1)
    return {"non_finite": int(finite.size - before.size),
            "zero_or_subnormal_start": int(np.count_nonzero(np.abs(before) < np.finfo(np.float32).tiny)),
            "below_half_ulp": int(np.count_nonzero(units < 1.0)),
            "sum_abs_delta": float(delta.sum()),
            BINS[0]: int(units.size - moved.size), **{label: int(n) for label, n in zip(BINS[1:], bins)}}


def checkpoint_ulps(before: str | os.PathLike, after: str | os.PathLike,
                    chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> list[dict]:
    """One row per compared parameter of before -> after: name, its module description, COUNTS and the
    number of entries in each of BINS. `after` must store fp32 weights: bf16 weights hold updates already
    rounded to bf16, which this account is not for (ValueError naming the tensor)."""
    pairs = compared_params(before, after)
    for pair in pairs:
        if pair.after.dtype != "F32" or pair.before.dtype not in START_DTYPES or pair.scale_before is not None:
            raise ValueError(f"{pair.name}: the ulp account needs fp32 weights after training and a start stored "
                             f"as {'/'.join(START_DTYPES)}; it is {pair.before.dtype} -> {pair.after.dtype}")
    rows = []
    with ChunkReader(chunk_bytes) as reader:
        for pair in pairs:
            row = {"name": pair.name, **describe(pair.name), "numel": pair.numel,
                   **dict.fromkeys((*COUNTS[1:], *BINS), 0)}
            step = max(1, chunk_bytes // 4)
            for start, stop in element_chunks(pair.numel, step):
                a = to_float32(reader.read(pair.before, start, stop, slot=0), pair.before.dtype)
                b = to_float32(reader.read(pair.after, start, stop, slot=1), pair.after.dtype)
                for key, value in _chunk_counts(a, b).items():
                    row[key] += value
            rows.append(row)
    return rows
