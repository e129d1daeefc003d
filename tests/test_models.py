"""Embedded model building, checkpoint I/O, and the pretrained-model fetch paths (offline)."""

import json
import shutil

import pytest
import torch

from subnet_rl.tasks import addition as task
from subnet_rl.models import (TinyModelSpec, build_char_tokenizer, build_tiny_model, fetch_pretrained,
                              load_checkpoint, require_checkpoint, save_checkpoint)

SMALL = TinyModelSpec(hidden_size=16, intermediate_size=32, num_layers=1, num_heads=2, num_kv_heads=1)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    tokenizer = build_char_tokenizer(task.ALPHABET)
    save_checkpoint(build_tiny_model(SMALL, tokenizer, seed=0), tokenizer, path)
    return path


def test_char_tokenizer_round_trip_keeps_every_character():
    tok = build_char_tokenizer(task.ALPHABET)
    ids = tok("07+93=001", add_special_tokens=False)["input_ids"]
    assert len(ids) == 9 and tok.decode(ids) == "07+93=001"
    assert tok.eos_token == "<eos>" and tok.pad_token_id != tok.eos_token_id


@pytest.mark.parametrize("architecture", ["qwen2", "llama"])
def test_build_tiny_model_is_seeded(architecture):
    tok = build_char_tokenizer(task.ALPHABET)
    spec = TinyModelSpec(**{**SMALL.__dict__, "architecture": architecture})
    a, b = build_tiny_model(spec, tok, seed=1), build_tiny_model(spec, tok, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert a.config.model_type == architecture


def test_checkpoint_round_trip_and_precision(tiny_checkpoint):
    model, tok = load_checkpoint(tiny_checkpoint, "bf16")
    assert next(model.parameters()).dtype == torch.bfloat16
    assert tok.decode(tok("12+34=", add_special_tokens=False)["input_ids"]) == "12+34="
    assert not list(tiny_checkpoint.parent.glob(".tiny.*.tmp")), "temporary folder left behind"


def test_require_checkpoint_messages(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        require_checkpoint(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        require_checkpoint(tmp_path)


def test_fetch_local_folder(tiny_checkpoint, tmp_path):
    info = fetch_pretrained("local", str(tiny_checkpoint), tmp_path / "out")
    assert info["source"] == "local"
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == (tiny_checkpoint / "model.safetensors").read_bytes()


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """A hub-layout cache folder, and huggingface_hub in offline mode: the real download functions run
    and are answered from the cache."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    cache = tmp_path / "cache"

    def publish(repo_id: str, folder, commit: str, ref: str = "main") -> None:
        repo = cache / f"models--{repo_id.replace('/', '--')}"
        shutil.copytree(folder, repo / "snapshots" / commit)
        (repo / "refs").mkdir()
        (repo / "refs" / ref).write_text(commit)

    return cache, publish


def test_fetch_hub_resolves_a_prepopulated_cache_offline(tiny_checkpoint, tmp_path, offline_hub):
    """The real snapshot_download call, answered from a hub-layout cache with HF_HUB_OFFLINE=1."""
    cache, publish = offline_hub
    commit = "0123456789abcdef0123456789abcdef01234567"
    publish("someorg/tiny-model", tiny_checkpoint, commit)
    info = fetch_pretrained("hub", "someorg/tiny-model", tmp_path / "out", cache_dir=str(cache))
    assert info == {"source": "hub", "name": "someorg/tiny-model", "revision": commit}
    assert json.loads((tmp_path / "out" / "provenance.json").read_text()) == info
    model, _ = load_checkpoint(tmp_path / "out")
    assert model.config.hidden_size == SMALL.hidden_size


def test_fetch_hub_offline_without_cache_fails_clearly(tmp_path, offline_hub):
    with pytest.raises(Exception, match="(?i)offline|cache|connection"):
        fetch_pretrained("hub", "someorg/absent", tmp_path / "out", cache_dir=str(tmp_path / "cache"))
    assert not (tmp_path / "out").exists()


def test_download_snapshot_records_the_resolved_commit_offline(tiny_checkpoint, tmp_path, offline_hub):
    from subnet_rl.checkpoints import Checkpoint
    from subnet_rl.models import download_snapshot

    _, publish = offline_hub
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    publish("org/tiny", tiny_checkpoint, commit, ref="v1")
    record = download_snapshot("org/tiny", "v1", str(tmp_path / "cache"))
    assert (record["revision"], record["requested_revision"]) == (commit, "v1")
    assert "model.safetensors" in record["files"]
    record_file = tmp_path / "record.json"
    record_file.write_text(json.dumps(record))
    assert Checkpoint(record_file).entries  # the diff engine follows download records


def test_a_seeded_hub_cache_answers_the_hub_id_offline(tiny_checkpoint, tmp_path, offline_hub):
    """seed_hub_cache puts a local folder where snapshot_download looks for the id: fetched offline, with the
    commit it was seeded under; a second seed of the same commit, or a commit that is no hash, is refused."""
    from subnet_rl.hub_checkpoints import seed_hub_cache

    commit = "feed" * 10
    snapshot = seed_hub_cache(tiny_checkpoint, "org/seeded", tmp_path / "cache", commit)
    assert snapshot == tmp_path / "cache" / "models--org--seeded" / "snapshots" / commit
    info = fetch_pretrained("hub", "org/seeded", tmp_path / "out", cache_dir=str(tmp_path / "cache"))
    assert info == {"source": "hub", "name": "org/seeded", "revision": commit}
    model, _ = load_checkpoint(tmp_path / "out")
    assert model.config.hidden_size == SMALL.hidden_size
    with pytest.raises(FileExistsError):
        seed_hub_cache(tiny_checkpoint, "org/seeded", tmp_path / "cache", commit)
    with pytest.raises(ValueError, match="40 lowercase hex"):
        seed_hub_cache(tiny_checkpoint, "org/other", tmp_path / "cache", "main")
