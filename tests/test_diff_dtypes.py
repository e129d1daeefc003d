"""`exact` between checkpoints of two float dtypes: compared in the one both widen into without loss, so
fp32 weights trained from a bf16 start show the changes bf16 rounds away (constructed pairs and random
ones against a brute-force reference); the bf16 criteria as within one dtype."""

import struct

import pytest
import torch
from test_diff import _write_pair, reference_counts, unchanged_masks

from subnet_rl.diff import Criterion, default_criteria, diff_checkpoints
from subnet_rl.floats import common_float

BF16, F16, F32, F64 = torch.bfloat16, torch.float16, torch.float32, torch.float64
# A change below half an ulp of the narrower format at 0.5 (bf16: 2^-9, fp16: 2^-12): it rounds back to the start.
SUB_ULP = {BF16: 2.0**-12, F16: 2.0**-14}


@pytest.mark.parametrize("narrow", [BF16, F16], ids=str)
@pytest.mark.parametrize("narrow_first", [True, False], ids=["narrow-before", "narrow-after"])
def test_exact_across_dtypes_compares_in_the_wider_dtype(tmp_path, narrow, narrow_first):
    """bf16 (or fp16) against fp32, either side first: `exact` sees an fp32 change that rounds back to the
    narrow value (unchanged under bf16_bitwise), and an fp32 value the narrow side cannot hold; entries
    whose narrow value widens to the fp32 one are unchanged. Compared in the narrower dtype, as before,
    those two changes would count as unchanged."""
    wide = torch.tensor([1.0, 0.5 + SUB_ULP[narrow], 0.1, -0.25, 3.0], dtype=F32)
    short = torch.tensor([1.0, 0.5, 0.1, -0.25, 2.0]).to(narrow)  # 0.1: rounded, not equal to the fp32 0.1
    before, after = (short, wide) if narrow_first else (wide, short)
    exact, bitwise = Criterion("exact"), Criterion("bf16_bitwise")
    masks = unchanged_masks(before, after, [exact, bitwise])
    assert masks[exact].tolist() == [True, False, False, True, False]
    assert masks[bitwise].tolist() == [True, True, True, True, False]
    row = diff_checkpoints(*_write_pair(tmp_path, {"w": before}, {"w": after}), [exact, bitwise],
                           chunk_bytes=8).set_index("name").loc["w"]  # the counting path, chunked
    assert (row["unchanged_exact"], row["unchanged_bf16_bitwise"]) == (2, 4)


def test_exact_between_bf16_and_fp16_compares_in_fp32():
    """Neither holds the other's values, both widen into fp32: compared there, bit for bit (+0 vs -0 is a
    change, as within one dtype); fp16's 0.1 is not bf16's 0.1 though both round to the same bf16."""
    before = torch.tensor([1.0, 0.1, 0.0, 2.0**-20]).to(F16)
    after = torch.tensor([1.0, 0.1, -0.0, 2.0**-20]).to(BF16)
    masks = unchanged_masks(before, after, [Criterion("exact"), Criterion("bf16_bitwise")])
    assert masks[Criterion("exact")].tolist() == [True, False, False, True]
    assert masks[Criterion("bf16_bitwise")].tolist() == [True, True, False, True]
    assert (common_float("BF16", "F16"), common_float("F32", "BF16"), common_float("F64", "F16")) == ("F32", "F32", "F64")
    assert common_float("F8_E4M3", "BF16") is None and common_float("I32", "F32") is None


MIXED = [(BF16, F32), (F32, BF16), (F16, F32), (F32, F16), (F16, BF16), (F32, F64), (BF16, F64)]


@pytest.mark.parametrize(("dtype_a", "dtype_b"), MIXED, ids=str)
def test_mixed_dtype_counts_match_bruteforce_reference(dtype_a, dtype_b):
    """Random updates (none, below bf16 resolution, small, large) from a start in one dtype to weights in
    another: `exact` is the equality of both values' float64 bit patterns (the widening to float64 is
    exact, so this is the wider dtype's comparison), the bf16 criteria as within one dtype."""
    g = torch.Generator().manual_seed(MIXED.index((dtype_a, dtype_b)))
    a = (torch.randn(3000, generator=g, dtype=F64) * 0.05).to(dtype_a)
    scale = torch.tensor([0.0, 1e-9, 3e-7, 4e-6, 2e-5, 1e-2], dtype=F64)[torch.randint(0, 6, (3000,), generator=g)]
    b = (a.double() + scale * torch.randn(3000, generator=g, dtype=F64)).to(dtype_b)
    tolerances = [1e-8, 1e-5]
    got = {c.label: int(m.sum()) for c, m in unchanged_masks(a, b, default_criteria(tolerances, tolerances)).items()}
    exact = sum(struct.pack("<d", x) == struct.pack("<d", y) for x, y in zip(a.double().tolist(), b.double().tolist()))
    reference = {**reference_counts(a, b, tolerances), "exact": exact}
    assert got == reference
    assert got["exact"] < got["bf16_bitwise"]  # sub-bf16 updates, or the narrow side's rounding: seen by exact only
