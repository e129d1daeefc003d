import pytest
import torch
from safetensors.torch import save_file

from subnet_rl.diff import Criterion
from subnet_rl.masks import MaskFile, extract_masks, pack, popcount, save_masks, unpack


@pytest.mark.parametrize("shape", [(1,), (7,), (8,), (9,), (3, 5), (4, 16, 3)])
def test_pack_unpack_round_trip(shape):
    mask = torch.rand(shape, generator=torch.Generator().manual_seed(len(shape))) > 0.5
    packed = pack(mask)
    assert packed.dtype == torch.uint8 and packed.numel() == (mask.numel() + 7) // 8
    assert torch.equal(unpack(packed, shape), mask)
    assert popcount(packed) == int(mask.sum())


def test_save_and_read_masks(tmp_path):
    masks = {"a": torch.tensor([[True, False, True], [False, False, True]]), "b": torch.ones(13, dtype=torch.bool)}
    path = tmp_path / "m.safetensors"
    save_masks(masks, path, "tol=1e-05")
    assert path.stat().st_size < 300  # bits, not bytes: 2 + 2 packed bytes plus the header
    read = MaskFile(path)
    assert read.criterion == "tol=1e-05" and read.names() == ["a", "b"]
    for name, mask in read.items():
        assert torch.equal(mask, masks[name])


def test_extract_masks_marks_changed_entries(tmp_path):
    before = {"w": torch.zeros(3, 4), "v": torch.ones(5)}
    after = {"w": torch.zeros(3, 4), "v": torch.ones(5)}
    after["w"][1, 2] = 0.5
    after["v"][0] = 1.0 + 1e-7  # below bf16 resolution at 1.0: unchanged under the paper's criterion
    save_file(before, tmp_path / "b.safetensors")
    save_file(after, tmp_path / "a.safetensors")
    out = tmp_path / "mask.safetensors"
    stats = extract_masks(tmp_path / "b.safetensors", tmp_path / "a.safetensors", Criterion("tolerance", 1e-5), out)
    assert stats == {"updated": 1, "total": 17, "density": 1 / 17}
    masks = dict(MaskFile(out).items())
    expected = torch.zeros(3, 4, dtype=torch.bool)
    expected[1, 2] = True
    assert torch.equal(masks["w"], expected) and not masks["v"].any()
    extract_masks(tmp_path / "b.safetensors", tmp_path / "a.safetensors", Criterion("exact"), out)
    assert dict(MaskFile(out).items())["v"][0]


def test_not_a_mask_file(tmp_path):
    save_file({"w": torch.zeros(2)}, tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="not a subnet-rl mask"):
        MaskFile(tmp_path / "x.safetensors")
    with pytest.raises(FileNotFoundError, match="run the mask stage"):
        MaskFile(tmp_path / "missing.safetensors")
