"""The comparison kernel: unchanged counts (or masks) of one chunk of a tensor pair, per criterion.

`tol=T` is the paper's number, computed exactly as its official script does: both checkpoints as bf16,
Δ = after - before subtracted in bf16 (rounded to nearest even), and `torch.isclose(Δ, 0, atol=T)`,
which compares |Δ| with T rounded to bf16 and never counts NaN (nor an inf that stays inf: inf - inf
is NaN) as close; +0 and -0 are equal. `exact_tol=T` is the exact difference of the two bf16 values
against T itself, with bit-identical entries (NaN and inf included) unchanged. `bf16_bitwise` counts
identical bf16 bit patterns (so +0 vs -0 is a change), and `exact` identical stored values, so a user
can see how much sparsity comes from bf16 rounding alone. Checkpoints of two float dtypes are compared
under `exact` in the format both widen into without loss (`floats.common_float`: a bf16 start against
fp32 weights in fp32), widened chunk by chunk for those tensors only; fp8 against another dtype and
integers against floats by value.

NumPy on raw storage, no torch: the kernels release the GIL, so `streaming` runs them on threads.
"""

from __future__ import annotations

import functools

import numpy as np

from ..floats import FP8, bf16_bits_to_f32, f32_to_bf16_bits, to_float32, wider_bits
from .criteria import TOLERANCE_KINDS, Criterion


@functools.cache
def isclose_threshold(tolerance: float) -> np.float32:
    """The largest float32 |Δ| that torch.isclose(Δ, 0, atol=tolerance) accepts once Δ is a bf16 value.

    isclose on bf16 tensors compares |Δ| with atol rounded to bf16 (`atol + rtol * |0|` computed in the
    tensor's dtype: the double cast to float32, then to bf16). Δ itself is the float32 difference rounded
    to bf16 (nearest even), and rounding is monotonic, so |round(x)| <= t exactly when |x| <= the
    midpoint between t and the next bf16 value, the midpoint included when the tie rounds down to t
    (t's last bit even). Comparing float32 |Δ| with this bound gives the official answer without
    rounding every difference to bf16.
    """
    t = int(f32_to_bf16_bits(np.array([tolerance], dtype=np.float32))[0])
    bound = (t << 16) + (0x8000 if t % 2 == 0 else 0x7FFF)
    return np.array([bound], dtype=np.uint32).view(np.float32)[0]


def _nonfinite(bits: np.ndarray) -> np.ndarray:
    """NaN or ±inf, from bf16 bit patterns (exponent all ones)."""
    return (bits & 0x7F80) == 0x7F80


def _any_nonfinite(bits: np.ndarray) -> bool:
    """Whether any bf16 pattern is NaN or ±inf, in two max reductions and no temporary array: negative
    NaN/inf are the largest uint16 patterns (>= 0xFF80), positive ones the largest int16 (>= 0x7F80)."""
    return bits.size > 0 and (int(bits.max()) >= 0xFF80 or int(bits.view(np.int16).max()) >= 0x7F80)


def _values64(raw: np.ndarray, dtype: str) -> np.ndarray:
    return to_float32(raw, dtype).astype(np.float64) if dtype in FP8 or dtype == "BF16" else raw.astype(np.float64)


def compare_chunk(stored_a: np.ndarray, a_dtype: str, stored_b: np.ndarray, b_dtype: str, bits_a: np.ndarray,
                  bits_b: np.ndarray, criteria: list[Criterion], want_masks: bool) -> dict[Criterion, np.ndarray | int]:
    """Unchanged counts (or boolean masks) per criterion for one chunk.

    `bits_*` are the compared values as bf16 bit patterns (bf16 casts, or dequantized fp8 rounded to
    bf16); `stored_*` the stored values, for the exact criterion. |Δ| is computed only where the bf16
    bits differ, which in sparse updates is a small share of the entries.
    """
    changed = bits_a != bits_b
    # Positions whose bits differ: needed by every tolerance criterion, and their count gives n_same
    # (one scan of `changed` instead of two).
    where = np.flatnonzero(changed) if any(c.kind in TOLERANCE_KINDS for c in criteria) else None
    n_same = changed.size - (where.size if where is not None else int(np.count_nonzero(changed)))
    delta = exact_delta = magnitude = stuck = None
    out: dict[Criterion, np.ndarray | int] = {}
    for criterion in criteria:
        if criterion.kind in TOLERANCE_KINDS:
            if delta is None:
                with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf, NaN: as torch
                    delta = np.abs(bf16_bits_to_f32(bits_b[where]) - bf16_bits_to_f32(bits_a[where]))
            if criterion.kind == "tolerance":
                # Official: Δ subtracted in bf16 (float32 compute, then rounded), isclose(Δ, 0, atol); NaN
                # is never close, and NaN or inf that stays put gives Δ = NaN: changed too.
                if stuck is None:
                    stuck = _nonfinite(bits_a) & ~changed if _any_nonfinite(bits_a) else False
                within = delta <= isclose_threshold(criterion.tolerance)
                lost = stuck
            else:
                # The exact difference of the two bf16 values (in float64, where it is always exact); the
                # relative criterion bounds it by η max(|w0|, |w1|) (bit-identical entries unchanged).
                if exact_delta is None:
                    a64, b64 = (bf16_bits_to_f32(bits[where]).astype(np.float64) for bits in (bits_a, bits_b))
                    with np.errstate(invalid="ignore"):
                        exact_delta = np.abs(b64 - a64)
                    magnitude = np.maximum(np.abs(a64), np.abs(b64))
                bound = criterion.tolerance * magnitude if criterion.kind == "relative" else criterion.tolerance
                with np.errstate(invalid="ignore"):
                    within = (exact_delta <= bound) & np.isfinite(exact_delta)
                lost = False
            if want_masks:
                mask = ~changed if lost is False else ~changed & ~lost
                mask[where] = within
                out[criterion] = mask
            else:
                lost_count = 0 if lost is False else int(np.count_nonzero(lost))
                out[criterion] = n_same - lost_count + int(np.count_nonzero(within))
        elif criterion.kind == "bf16_bitwise" or (a_dtype == b_dtype == "BF16"):
            out[criterion] = ~changed if want_masks else n_same
        else:
            as_bits = wider_bits(stored_a, a_dtype, stored_b, b_dtype)
            equal = (as_bits[0] == as_bits[1]) if as_bits is not None else (
                _values64(stored_a, a_dtype) == _values64(stored_b, b_dtype))
            out[criterion] = equal if want_masks else int(np.count_nonzero(equal))
    return out
