"""Paper-scale checkpoint handling: shards, chunks, fp8 block scales, tied weights, corrupt files."""

import json

import pytest
import torch
from safetensors.torch import save_file

from subnet_rl.tasks import addition as task
from subnet_rl.checkpoints import Checkpoint, CheckpointError
from subnet_rl.checkpoints import FP8_BLOCK
from subnet_rl.diff import default_criteria, diff_checkpoints, skipped, sparsity
from subnet_rl.floats import dequantize
from subnet_rl.models import TinyModelSpec, build_char_tokenizer, build_tiny_model

SPEC = TinyModelSpec(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, num_kv_heads=1)


def _perturbed(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.where(torch.rand(p.shape, generator=g) < 0.3, 1e-3, 0.0))
    return model


@pytest.fixture(scope="module")
def model_pair(tmp_path_factory):
    """The same before/after pair saved as single files and as sharded folders with an index."""
    root = tmp_path_factory.mktemp("pairs")
    tok = build_char_tokenizer(task.ALPHABET)
    for name, seed in (("before", None), ("after", 1)):
        model = build_tiny_model(SPEC, tok, seed=0)
        if seed is not None:
            _perturbed(model, seed)
        model.save_pretrained(root / "single" / name)
        model.save_pretrained(root / "sharded" / name, max_shard_size="20KB")
    return root


def test_sharded_and_single_file_give_identical_results(model_pair):
    sharded = Checkpoint(model_pair / "sharded" / "before")
    assert len(sharded.files) > 3, "the fixture should produce several shards"
    single = diff_checkpoints(model_pair / "single" / "before", model_pair / "single" / "after")
    by_shard = diff_checkpoints(model_pair / "sharded" / "before", model_pair / "sharded" / "after")
    assert single.equals(by_shard)
    assert 0.6 < sparsity(single)["tol=1e-05"] < 0.8


def test_chunk_size_does_not_change_results(model_pair):
    before, after = model_pair / "single" / "before", model_pair / "single" / "after"
    whole = diff_checkpoints(before, after, chunk_bytes=2**30)
    tiny_chunks = diff_checkpoints(before, after, chunk_bytes=100)
    assert whole.equals(tiny_chunks)


def test_truncated_shard_names_the_file(model_pair, tmp_path):
    import shutil

    folder = tmp_path / "ckpt"
    shutil.copytree(model_pair / "sharded" / "before", folder)
    shard = sorted(folder.glob("*.safetensors"))[1]
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match=f"{shard.name} is truncated.*re-download"):
        Checkpoint(folder)


def test_missing_shard_named_by_the_index(model_pair, tmp_path):
    import shutil

    folder = tmp_path / "ckpt"
    shutil.copytree(model_pair / "sharded" / "before", folder)
    shard = sorted(folder.glob("*.safetensors"))[0]
    shard.unlink()
    with pytest.raises(CheckpointError, match=f"lists shard {shard.name}, which is missing"):
        Checkpoint(folder)


def test_garbage_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError, match="model.safetensors.*re-download or re-save"):
        Checkpoint(bad)


def test_tied_weights_counted_once(tmp_path):
    for name, value in (("before", 0.0), ("after", 1.0)):
        folder = tmp_path / name
        folder.mkdir()
        emb = torch.full((4, 2), value)
        save_file({"model.embed_tokens.weight": emb, "lm_head.weight": emb.clone(), "w": torch.zeros(3)},
                  folder / "model.safetensors")
        (folder / "config.json").write_text(json.dumps({"tie_word_embeddings": True}))
    table = diff_checkpoints(tmp_path / "before", tmp_path / "after").set_index("name")
    assert table.loc["lm_head.weight", "status"] == "tied" and table.loc["lm_head.weight", "numel"] == 0
    assert table["numel"].sum() == 11
    assert sparsity(table.reset_index())["exact"] == pytest.approx(3 / 11)


def _tied_side(folder, embed, lm_head=None, config=None):
    folder.mkdir()
    tensors = {"model.embed_tokens.weight": embed, "w": torch.zeros(3)}
    if lm_head is not None:
        tensors["lm_head.weight"] = lm_head
    save_file(tensors, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(config or {}))


@pytest.mark.parametrize("config", [{"tie_word_embeddings": True}, {"text_config": {"tie_word_embeddings": True}}],
                         ids=["top-level", "text_config"])
def test_a_weight_tied_on_one_side_only_is_compared(tmp_path, config):
    """Before ties lm_head to its embedding (stores no lm_head); after trains a separate lm_head."""
    embed = torch.zeros(4, 2)
    _tied_side(tmp_path / "before", embed, config=config)
    lm_head = embed.clone()
    lm_head[0, 0] = 1.0  # the separately trained head moved one entry away from the tied embedding
    _tied_side(tmp_path / "after", embed.clone(), lm_head, config={"tie_word_embeddings": False})
    table = diff_checkpoints(tmp_path / "before", tmp_path / "after").set_index("name")
    row = table.loc["lm_head.weight"]
    assert (row["status"], row["numel"], row["tied_to"]) == ("compared", 8, "model.embed_tokens.weight")
    assert row["unchanged_exact"] == 7
    assert table["numel"].sum() == 8 + 8 + 3 and skipped(table.reset_index()) == []


def test_tied_on_both_sides_counts_once_even_when_one_side_stores_the_copy(tmp_path):
    embed = torch.zeros(4, 2)
    _tied_side(tmp_path / "before", embed, embed.clone(), config={"tie_word_embeddings": True})
    _tied_side(tmp_path / "after", embed.clone(), config={"text_config": {"tie_word_embeddings": True}})
    table = diff_checkpoints(tmp_path / "before", tmp_path / "after").set_index("name")
    assert table.loc["lm_head.weight", "status"] == "tied" and table["numel"].sum() == 11


def reference_dequantize(weight: torch.Tensor, scale: torch.Tensor, block=(FP8_BLOCK, FP8_BLOCK)) -> torch.Tensor:
    """Block by block, as DeepSeek-V3's weight_dequant describes it."""
    out = torch.empty(weight.shape, dtype=torch.float32)
    for i in range(scale.shape[0]):
        for j in range(scale.shape[1]):
            rows = slice(i * block[0], (i + 1) * block[0])
            cols = slice(j * block[1], (j + 1) * block[1])
            out[rows, cols] = weight[rows, cols].to(torch.float32) * scale[i, j].to(torch.float32)
    return out


def _fp8_pair(tmp_path):
    g = torch.Generator().manual_seed(0)
    shape = (300, 260)  # not multiples of 128: partial blocks at the edges
    weight = (torch.randn(shape, generator=g) * 2).to(torch.float8_e4m3fn)
    scale = torch.rand(3, 3, generator=g) * 0.01 + 1e-3
    weight2 = weight.clone()
    weight2[5, 7] = torch.tensor(3.0).to(torch.float8_e4m3fn)
    weight2[299, 259] = torch.tensor(-1.5).to(torch.float8_e4m3fn)
    scale2 = scale.clone()
    scale2[1, 1] *= 1.5  # rescales one 128 x 128 block: dequantized values change, stored fp8 bytes do not
    save_file({"layers.0.mlp.up_proj.weight": weight, "layers.0.mlp.up_proj.weight_scale_inv": scale},
              tmp_path / "before.safetensors")
    save_file({"layers.0.mlp.up_proj.weight": weight2, "layers.0.mlp.up_proj.weight_scale_inv": scale2},
              tmp_path / "after.safetensors")
    return (weight, scale), (weight2, scale2)


def test_fp8_dequantisation_matches_blockwise_reference():
    g = torch.Generator().manual_seed(3)
    weight = torch.randn(300, 260, generator=g).to(torch.float8_e4m3fn)
    scale = torch.rand(3, 3, generator=g)
    reference = reference_dequantize(weight, scale).numpy()
    raw, scale = weight.view(torch.uint8).numpy(), scale.numpy()
    assert (dequantize(raw.reshape(-1), "F8_E4M3", scale, 260, 0).reshape(300, 260) == reference).all()
    # A chunk that starts at row 128 (block-aligned, as the diff chunks it).
    chunk = dequantize(raw[128:256].reshape(-1), "F8_E4M3", scale, 260, 128).reshape(128, 260)
    assert (chunk == reference[128:256]).all()


@pytest.mark.parametrize("chunk_bytes", [2**30, FP8_BLOCK * 260])
def test_fp8_pair_compares_dequantized_values_and_stored_bytes(tmp_path, chunk_bytes):
    (w1, s1), (w2, s2) = _fp8_pair(tmp_path)
    table = diff_checkpoints(tmp_path / "before.safetensors", tmp_path / "after.safetensors",
                             default_criteria([1e-5]), chunk_bytes=chunk_bytes).set_index("name")
    row = table.loc["layers.0.mlp.up_proj.weight"]
    deq1, deq2 = reference_dequantize(w1, s1), reference_dequantize(w2, s2)
    same_bf16 = (deq1.to(torch.bfloat16).view(torch.int16) == deq2.to(torch.bfloat16).view(torch.int16))
    within = same_bf16 | ((deq2.to(torch.bfloat16).float() - deq1.to(torch.bfloat16).float()).abs() <= 1e-5)
    assert row["unchanged_tol=1e-05"] == int(within.sum())
    assert row["unchanged_exact"] == 300 * 260 - 2  # stored bytes: only the two edited entries differ
    assert row["unchanged_tol=1e-05"] < 300 * 260 - 16000  # the rescaled 128 x 128 block counts as changed
    assert table.loc["layers.0.mlp.up_proj.weight_scale_inv", "role"] == "scale"
    assert sparsity(table.reset_index())["exact"] == pytest.approx((300 * 260 - 2) / (300 * 260))


def test_a_tensor_named_scale_without_fp8_weight_is_a_parameter(tmp_path):
    save_file({"logit_scale": torch.ones(1), "w": torch.zeros(3)}, tmp_path / "before.safetensors")
    save_file({"logit_scale": torch.full((1,), 2.0), "w": torch.zeros(3)}, tmp_path / "after.safetensors")
    table = diff_checkpoints(tmp_path / "before.safetensors", tmp_path / "after.safetensors").set_index("name")
    assert table.loc["logit_scale", "role"] == "param"
    assert sparsity(table.reset_index())["exact"] == pytest.approx(3 / 4)


def test_unsupported_dtype_is_named(tmp_path):
    save_file({"w": torch.zeros(2, dtype=torch.complex64)}, tmp_path / "c.safetensors")
    with pytest.raises(CheckpointError, match="tensor w has dtype 'C64'.*supported"):
        Checkpoint(tmp_path / "c.safetensors")


@pytest.mark.parametrize("scale_dtype", [torch.bfloat16, torch.float16])
def test_fp8_scales_in_another_dtype_and_block_size_from_the_config(tmp_path, scale_dtype):
    """Scales stored as bf16/fp16 are decoded from their dtype (not multiplied as raw bits), and the block
    size is the checkpoint's quantization_config.weight_block_size (here 64 x 32)."""
    g = torch.Generator().manual_seed(5)
    weight = (torch.randn(150, 100, generator=g) * 2).to(torch.float8_e4m3fn)
    scale = (torch.rand(3, 4, generator=g) * 0.01 + 1e-3).to(scale_dtype)
    scale2 = scale.clone()
    scale2[2, 3] *= 2  # the last (partial) 64 x 32 block: rows 128-149, columns 96-99
    for name, s in (("before", scale), ("after", scale2)):
        (tmp_path / name).mkdir()
        save_file({"layers.0.mlp.up_proj.weight": weight, "layers.0.mlp.up_proj.weight_scale_inv": s},
                  tmp_path / name / "model.safetensors")
        (tmp_path / name / "config.json").write_text(json.dumps(
            {"quantization_config": {"quant_method": "fp8", "weight_block_size": [64, 32]}}))
    table = diff_checkpoints(tmp_path / "before", tmp_path / "after", default_criteria([1e-5]),
                             chunk_bytes=64 * 100).set_index("name")
    deq1, deq2 = reference_dequantize(weight, scale, (64, 32)), reference_dequantize(weight, scale2, (64, 32))
    b1, b2 = deq1.to(torch.bfloat16), deq2.to(torch.bfloat16)
    row = table.loc["layers.0.mlp.up_proj.weight"]
    assert row["unchanged_bf16_bitwise"] == int((b1.view(torch.int16) == b2.view(torch.int16)).sum())
    nonzero_in_block = int((weight[128:, 96:].to(torch.float32) != 0).sum())
    assert row["unchanged_bf16_bitwise"] == 150 * 100 - nonzero_in_block


def test_the_same_scales_stored_as_float32_and_bf16_dequantize_alike(tmp_path):
    g = torch.Generator().manual_seed(6)
    weight = (torch.randn(130, 130, generator=g) * 2).to(torch.float8_e4m3fn)
    scale = (torch.rand(2, 2, generator=g) * 0.01 + 1e-3).to(torch.bfloat16)  # exactly representable in both
    save_file({"l.weight": weight, "l.weight_scale_inv": scale.to(torch.float32)}, tmp_path / "before.safetensors")
    save_file({"l.weight": weight, "l.weight_scale_inv": scale}, tmp_path / "after.safetensors")
    table = diff_checkpoints(tmp_path / "before.safetensors", tmp_path / "after.safetensors").set_index("name")
    assert table.loc["l.weight", "unchanged_bf16_bitwise"] == 130 * 130
