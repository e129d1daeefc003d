"""Float formats on raw NumPy storage: bf16 bits, fp8 decoding, block dequantisation.

The diff engine works on the bytes a safetensors file stores, as NumPy arrays, so that the `subnet-rl
diff` process starts in a tenth of a second (no torch import) and runs NumPy kernels that release the
GIL. bf16 is handled as its uint16 bit pattern; conversions round to nearest even with NaN mapped to
0x7FC0, as torch does, and tests hold them to a brute-force reference.
"""

from __future__ import annotations

import numpy as np

# safetensors dtype name -> NumPy dtype of the stored bytes (bf16 and fp8 kept as raw bits).
STORAGE = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
    "F8_E4M3": np.uint8, "F8_E5M2": np.uint8,
}
FLOAT_BITS = {"F64": 64, "F32": 32, "F16": 16, "BF16": 16, "F8_E4M3": 8, "F8_E5M2": 8}
FP8 = ("F8_E4M3", "F8_E5M2")


def _fp8_table(exponent_bits: int, mantissa_bits: int, finite_only: bool) -> np.ndarray:
    """Value of every byte of an fp8 format (OCP e4m3fn: no inf, NaN at S.1111.111; e5m2: IEEE-like)."""
    bias = 2 ** (exponent_bits - 1) - 1
    table = np.empty(256, dtype=np.float32)
    for byte in range(256):
        sign = -1.0 if byte & 0x80 else 1.0
        exponent = (byte >> mantissa_bits) & ((1 << exponent_bits) - 1)
        mantissa = byte & ((1 << mantissa_bits) - 1)
        top = (1 << exponent_bits) - 1
        if finite_only and exponent == top and mantissa == (1 << mantissa_bits) - 1:
            value = np.nan
        elif not finite_only and exponent == top:
            value = np.inf if mantissa == 0 else np.nan
        elif exponent == 0:
            value = mantissa / 2**mantissa_bits * 2.0 ** (1 - bias)
        else:
            value = (1 + mantissa / 2**mantissa_bits) * 2.0 ** (exponent - bias)
        table[byte] = sign * value
    return table


FP8_VALUES = {"F8_E4M3": _fp8_table(4, 3, finite_only=True), "F8_E5M2": _fp8_table(5, 2, finite_only=False)}


def f32_to_bf16_bits(values: np.ndarray) -> np.ndarray:
    """Round float32 to bf16 (nearest even), as uint16 bit patterns; NaN -> 0x7FC0 like torch."""
    bits = values.astype(np.float32, copy=False).view(np.uint32)
    rounded = ((bits + (0x7FFF + ((bits >> 16) & 1))) >> 16).astype(np.uint16)
    nan = np.isnan(values)
    if nan.any():
        rounded[nan] = 0x7FC0
    return rounded


def bf16_bits_to_f32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def to_float32(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Stored values as float32 (exact for every format but F64 and large integers)."""
    if dtype == "BF16":
        return bf16_bits_to_f32(raw)
    if dtype in FP8:
        return FP8_VALUES[dtype][raw]
    return raw.astype(np.float32)


def to_bf16_bits(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Stored values rounded to bf16, as bit patterns (the paper compares every model in bf16)."""
    if dtype == "BF16":
        return raw
    return f32_to_bf16_bits(to_float32(raw, dtype))


def dequantize(raw: np.ndarray, dtype: str, scale: np.ndarray, row_elems: int, first_row: int,
               block: int | tuple[int, int] = 128) -> np.ndarray:
    """fp8 weights times their per-block scale (DeepSeek-V3's `weight_scale_inv`, blocks of 128 x 128 or
    the (rows, columns) given), for a chunk of whole rows starting at `first_row`; float32. `scale` holds
    decoded values (float32), whatever dtype the checkpoint stores them in."""
    block_rows, block_cols = (block, block) if isinstance(block, int) else block
    rows = raw.size // row_elems
    values = to_float32(raw, dtype).reshape(rows, row_elems)
    row_scale = np.repeat(scale.astype(np.float32, copy=False), block_rows, axis=0)[first_row : first_row + rows]
    return (values * np.repeat(row_scale, block_cols, axis=1)[:, :row_elems]).reshape(-1)


# The wider float formats each format widens into without loss. Neither of bf16 and fp16 holds the other's
# values (fp16 lacks bf16's exponent range, bf16 fp16's precision): both widen into fp32.
WIDENS_INTO = {"BF16": ("F32", "F64"), "F16": ("F32", "F64"), "F32": ("F64",)}
_UINT = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}


def common_float(a_dtype: str, b_dtype: str) -> str | None:
    """The narrowest float format both dtypes widen into without loss (bf16 and fp32: fp32; bf16 and fp16:
    fp32), where a comparison sees every difference either side stores; None for fp8 against another
    dtype (block-scaled weights: their stored bytes are not their values) and for integers."""
    if a_dtype == b_dtype:
        return a_dtype
    common = ({a_dtype, *WIDENS_INTO.get(a_dtype, ())} & {b_dtype, *WIDENS_INTO.get(b_dtype, ())})
    return min(common, key=FLOAT_BITS.__getitem__) if common else None


def _widened_bits(raw: np.ndarray, dtype: str, target: str) -> np.ndarray:
    """Stored values as bit patterns of `target`, a format holding all of them (exact: no rounding)."""
    if dtype == target:
        return raw.view(_UINT[FLOAT_BITS[dtype]])
    # bf16: bits << 16 (exact, -0 and NaN payloads kept); fp16 and fp32: NumPy's exact casts.
    values = bf16_bits_to_f32(raw) if dtype == "BF16" else raw if dtype == "F32" else raw.astype(np.float32)
    return (values if target == "F32" else values.astype(np.float64)).view(_UINT[FLOAT_BITS[target]])


def wider_bits(a: np.ndarray, a_dtype: str, b: np.ndarray, b_dtype: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Both stored values as bit patterns of the format both widen into without loss (`common_float`): a
    bf16 start and fp32 weights trained from it are compared in fp32, where an update smaller than half a
    bf16 ulp is still a change. Same dtype: views of the stored bits (integers as stored). None where there
    is no such format (fp8, integers against floats)."""
    if a_dtype == b_dtype:
        view = _UINT.get(FLOAT_BITS.get(a_dtype, 0))
        return (a.view(view), b.view(view)) if view is not None else (a, b)
    target = common_float(a_dtype, b_dtype)
    if target is None:
        return None
    return _widened_bits(a, a_dtype, target), _widened_bits(b, b_dtype, target)
