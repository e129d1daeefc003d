import numpy as np
import pytest
import torch
from safetensors.numpy import load_file as load_numpy
from safetensors.torch import save_file

from subnet_rl.checkpoints import Checkpoint
from subnet_rl.diff import Criterion, compared_params, diff_checkpoints
from subnet_rl.mask_extraction import extract_masks
from subnet_rl.masks import MaskFile, pack, popcount, save_masks, unpack
from subnet_rl.models import TinyModelSpec, build_char_tokenizer, build_tiny_model
from subnet_rl.overlap import mask_overlap
from subnet_rl.tasks import addition as task

TOL = Criterion("tolerance", 1e-5)


@pytest.mark.parametrize("shape", [(1,), (7,), (8,), (9,), (3, 5), (4, 16, 3)])
def test_pack_unpack_round_trip(shape):
    mask = np.random.default_rng(len(shape)).random(shape) > 0.5
    packed = pack(mask)
    assert packed.dtype == np.uint8 and packed.size == (mask.size + 7) // 8
    assert (unpack(packed, shape) == mask).all()
    assert popcount(packed) == int(mask.sum())
    assert (pack(torch.from_numpy(mask)) == packed).all()  # torch masks pack the same


def test_save_and_read_masks(tmp_path):
    masks = {"a": np.array([[True, False, True], [False, False, True]]), "b": np.ones(13, dtype=bool)}
    path = tmp_path / "m.safetensors"
    save_masks(masks, path, "tol=1e-05")
    assert path.stat().st_size < 300  # bits, not bytes: 1 + 2 packed bytes plus the header
    assert load_numpy(path)["a"].tolist() == [0b00100101]  # plain safetensors, readable by the library
    read = MaskFile(path)
    assert read.criterion == "tol=1e-05" and read.names() == ["a", "b"]
    for name, mask in read.items():
        assert (mask == masks[name]).all()


def test_extract_masks_marks_changed_entries(tmp_path):
    before = {"w": torch.zeros(3, 4), "v": torch.ones(5)}
    after = {"w": torch.zeros(3, 4), "v": torch.ones(5)}
    after["w"][1, 2] = 0.5
    after["v"][0] = 1.0 + 1e-7  # below bf16 resolution at 1.0: unchanged under the paper's criterion
    save_file(before, tmp_path / "b.safetensors")
    save_file(after, tmp_path / "a.safetensors")
    out = tmp_path / "mask.safetensors"
    stats = extract_masks(tmp_path / "b.safetensors", tmp_path / "a.safetensors", TOL, out)
    assert stats == {"updated": 1, "total": 17, "density": 1 / 17}
    masks = dict(MaskFile(out).items())
    expected = np.zeros((3, 4), dtype=bool)
    expected[1, 2] = True
    assert (masks["w"] == expected).all() and not masks["v"].any()
    extract_masks(tmp_path / "b.safetensors", tmp_path / "a.safetensors", Criterion("exact"), out)
    assert dict(MaskFile(out).items())["v"][0]


def test_masks_cover_exactly_the_compared_parameters(tmp_path):
    """`compared_params` (what masks, ranks and dynamics iterate) holds parameters whose values were compared,
    in name order: no buffer, no tensor on one side only, no dtype mismatch, a resized one only on shared rows."""
    before = {"model.layers.0.mlp.up_proj.weight": torch.zeros(4, 3), "model.embed_tokens.weight": torch.zeros(5, 3),
              "model.layers.0.self_attn.rotary_emb.inv_freq": torch.ones(2), "gone": torch.zeros(2),
              "flag": torch.zeros(2, dtype=torch.bool)}
    after = {**before, "model.embed_tokens.weight": torch.ones(6, 3), "flag": torch.zeros(2, dtype=torch.int64)}
    del after["gone"]
    after["model.layers.0.mlp.up_proj.weight"] = torch.ones(4, 3)
    after["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.full((2,), 2.0)
    save_file(before, tmp_path / "b.safetensors")
    save_file(after, tmp_path / "a.safetensors")
    b, a = tmp_path / "b.safetensors", tmp_path / "a.safetensors"
    assert [p.name for p in compared_params(b, a)] == ["model.layers.0.mlp.up_proj.weight"]
    shared = compared_params(Checkpoint(b), Checkpoint(a), resized="shared_rows")  # opened checkpoints work too
    assert [(p.name, p.compared_shape) for p in shared] == [("model.embed_tokens.weight", (5, 3)),
                                                            ("model.layers.0.mlp.up_proj.weight", (4, 3))]
    stats = extract_masks(b, a, TOL, tmp_path / "mask.safetensors", resized="shared_rows")
    assert MaskFile(tmp_path / "mask.safetensors").names() == [p.name for p in shared]
    assert stats == {"updated": 27, "total": 27, "density": 1.0}


@pytest.fixture(scope="module")
def sharded_pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded")
    tok = build_char_tokenizer(task.ALPHABET)
    spec = TinyModelSpec(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, num_kv_heads=1)
    for name, seed in (("before", None), ("after", 1), ("other", 2)):
        model = build_tiny_model(spec, tok, seed=0)
        if seed is not None:
            g = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.where(torch.rand(p.shape, generator=g) < 0.3, 1e-2, 0.0))
        model.save_pretrained(root / name, max_shard_size="20KB")
        model.save_pretrained(root / f"{name}-single")
    return root


def test_sharded_masks_mirror_shards_and_match_single_file(sharded_pair, tmp_path):
    root = sharded_pair
    folder = tmp_path / "mask-folder"
    stats = extract_masks(root / "before", root / "after", TOL, folder, chunk_bytes=1000)
    shards = sorted(p.name for p in (root / "before").glob("*.safetensors"))
    assert sorted(p.name for p in folder.glob("*.safetensors")) == shards
    single = tmp_path / "single.safetensors"
    assert extract_masks(root / "before-single", root / "after-single", TOL, single) == stats
    by_shard, whole = MaskFile(folder), MaskFile(single)
    assert by_shard.names() == whole.names()
    for name in whole.names():
        assert (by_shard.mask(name) == whole.mask(name)).all()
    diff = diff_checkpoints(root / "before", root / "after", [TOL])
    assert stats["updated"] == int(diff["numel"].sum() - diff["unchanged_tol=1e-05"].sum())


def test_overlap_streams_over_mask_shards(sharded_pair, tmp_path):
    root = sharded_pair
    extract_masks(root / "before", root / "after", TOL, tmp_path / "m1")
    extract_masks(root / "before", root / "other", TOL, tmp_path / "m2")
    m1, m2 = MaskFile(tmp_path / "m1"), MaskFile(tmp_path / "m2")
    a = np.concatenate([m1.mask(n).ravel() for n in m1.names()])
    b = np.concatenate([m2.mask(n).ravel() for n in m2.names()])
    stats = mask_overlap(tmp_path / "m1", tmp_path / "m2", chunk_bytes=64)  # many chunks per tensor
    assert (stats["updated_1"], stats["updated_2"], stats["intersection"]) == (a.sum(), b.sum(), (a & b).sum())


def test_not_a_mask_file(tmp_path):
    save_file({"w": torch.zeros(2)}, tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="not a subnet-rl mask"):
        MaskFile(tmp_path / "x.safetensors")
    with pytest.raises(FileNotFoundError, match="run the mask stage"):
        MaskFile(tmp_path / "missing.safetensors")


def test_random_mask_controls_match_the_density_and_differ_from_the_mask(tmp_path):
    from subnet_rl.masks import random_mask_like

    g = torch.Generator().manual_seed(0)
    masks = {"a": torch.rand(200, 100, generator=g) < 0.3, "b": torch.rand(300, generator=g) < 0.8}
    save_masks(masks, tmp_path / "run.safetensors", "tol=1e-05")
    run = MaskFile(tmp_path / "run.safetensors")
    same = random_mask_like(run, None, seed=1, out=tmp_path / "same.safetensors")
    control = MaskFile(tmp_path / "same.safetensors")
    assert control.shapes == run.shapes
    for name, original in masks.items():
        drawn = control.mask(name)
        assert abs(drawn.mean() - original.float().mean().item()) < 0.05  # the tensor's own density
        assert (drawn != original.numpy()).any()
    one_percent = random_mask_like(run, 0.01, seed=1, out=tmp_path / "one.safetensors")
    assert 0.003 < one_percent["density"] < 0.02 and one_percent["total"] == same["total"] == 20300
    assert random_mask_like(run, None, seed=1, out=tmp_path / "again.safetensors") == same  # seeded
