"""Overlap formulas against sets computed by hand."""

import pytest
import torch

from subnet_rl.masks import save_masks
from subnet_rl.overlap import mask_overlap, overlap_stats, pairwise_overlap


def test_overlap_stats_by_hand():
    # n = 10; I1 = {0,1,2,3}, I2 = {2,3,4,5,6,7}: |I1 ∩ I2| = 2, |I1 ∪ I2| = 8.
    s = overlap_stats(10, 4, 6, 2)
    assert s["o1"] == pytest.approx(2 / 4)
    assert s["o2"] == pytest.approx(2 / 6)
    assert s["jaccard"] == pytest.approx(2 / 8)
    assert s["sparsity_1"] == pytest.approx(0.6) and s["sparsity_2"] == pytest.approx(0.4)
    assert s["random_o1"] == pytest.approx(1 - 0.4)  # 1 - s2
    assert s["random_o2"] == pytest.approx(1 - 0.6)  # 1 - s1
    assert s["random_jaccard"] == pytest.approx(0.4 * 0.6 / (0.4 + 0.6 - 0.24))


def test_paper_table4_random_baseline():
    """Seed row of Table 4: both sparsities 63.3% -> random o1 = o2 = 36.7%."""
    s = overlap_stats(1000, 367, 367, 200)
    assert s["random_o1"] == pytest.approx(0.367) and s["random_o2"] == pytest.approx(0.367)


def _mask(n, indices):
    m = torch.zeros(n, dtype=torch.bool)
    m[list(indices)] = True
    return m


def test_mask_overlap_streams_over_tensors(tmp_path):
    i1 = {"a": {0, 1, 2, 3}, "b": {10, 11}}
    i2 = {"a": {2, 3, 4, 5, 6, 7}, "b": {11, 12, 13}}
    for name, sets in (("one", i1), ("two", i2)):
        save_masks({k: _mask(20, v) for k, v in sets.items()}, tmp_path / f"{name}.safetensors", "tol=1e-05")
    s = mask_overlap(tmp_path / "one.safetensors", tmp_path / "two.safetensors")
    # Hand count: |I1| = 6, |I2| = 9, |I1 ∩ I2| = 2 (a) + 1 (b) = 3, n = 40.
    assert (s["numel"], s["updated_1"], s["updated_2"], s["intersection"]) == (40, 6, 9, 3)
    assert s["o1"] == pytest.approx(3 / 6) and s["o2"] == pytest.approx(3 / 9)
    assert s["jaccard"] == pytest.approx(3 / 12)
    table = pairwise_overlap({"x": tmp_path / "one.safetensors", "y": tmp_path / "two.safetensors"})
    assert list(table[["run_1", "run_2"]].iloc[0]) == ["x", "y"] and len(table) == 1


def test_masks_of_different_models_refuse(tmp_path):
    save_masks({"a": _mask(8, {1})}, tmp_path / "one.safetensors", "tol=1e-05")
    save_masks({"a": _mask(9, {1})}, tmp_path / "two.safetensors", "tol=1e-05")
    with pytest.raises(ValueError, match="different tensors or shapes"):
        mask_overlap(tmp_path / "one.safetensors", tmp_path / "two.safetensors")
