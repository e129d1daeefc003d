"""Update rank: a constructed Δ of known rank (1, 5, full) is recovered, by the library and the CLI."""

import json
import math

import pytest
import torch
from safetensors.torch import save_file

from subnet_rl.cli import main
from subnet_rl.rank import checkpoint_ranks, rank_summary, update_rank


def _pair(tmp_path):
    g = torch.Generator().manual_seed(0)
    before = {name: torch.randn(40, 30, generator=g) for name in
              ("model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.up_proj.weight",
               "model.layers.0.mlp.down_proj.weight", "model.embed_tokens.weight")}
    before["model.norm.weight"] = torch.ones(30)  # 1-D: not a matrix, no rank
    after = {k: v.clone() for k, v in before.items()}
    after["model.layers.0.self_attn.q_proj.weight"] += torch.randn(40, 1, generator=g) @ torch.randn(1, 30, generator=g)
    after["model.layers.0.mlp.up_proj.weight"] += torch.randn(40, 5, generator=g) @ torch.randn(5, 30, generator=g)
    after["model.layers.0.mlp.down_proj.weight"] += torch.randn(40, 30, generator=g)
    after["model.norm.weight"] += 1.0
    save_file(before, tmp_path / "before.safetensors")
    save_file(after, tmp_path / "after.safetensors")
    return tmp_path / "before.safetensors", tmp_path / "after.safetensors"


def test_known_ranks_are_recovered(tmp_path):
    rows = {r["name"]: r for r in checkpoint_ranks(*_pair(tmp_path))}
    assert "model.norm.weight" not in rows
    assert rows["model.layers.0.self_attn.q_proj.weight"]["rank"] == 1
    assert rows["model.layers.0.mlp.up_proj.weight"]["rank"] == 5
    full = rows["model.layers.0.mlp.down_proj.weight"]
    assert (full["rank"], full["max_rank"], full["rank_pct"]) == (30, 30, 100.0)
    assert rows["model.layers.0.self_attn.q_proj.weight"]["stable_rank"] == pytest.approx(1.0)
    assert 1.0 < rows["model.layers.0.mlp.up_proj.weight"]["effective_rank"] <= 5.0
    untouched = rows["model.embed_tokens.weight"]
    assert untouched["rank"] == 0 and math.isnan(untouched["stable_rank"])  # not computable: said so
    summary = rank_summary(list(rows.values()))
    assert summary["mlp"]["mean_rank_pct"] == pytest.approx(100 * (5 / 30 + 1) / 2)
    assert summary["embedding"]["matrices"] == 1  # embeddings reported apart from the layers


def test_relative_tolerance_changes_what_counts():
    g = torch.Generator().manual_seed(1)
    u, _ = torch.linalg.qr(torch.randn(20, 20, generator=g))
    delta = u @ torch.diag(torch.tensor([1.0] * 10 + [1e-4] * 10)) @ u.T
    assert update_rank(delta)["rank"] == 20
    assert update_rank(delta, rtol=1e-3)["rank"] == 10


def test_cli_json(tmp_path, capsys):
    before, after = _pair(tmp_path)
    assert main(["rank", str(before), str(after), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["model.layers.0.mlp.up_proj.weight"]["rank"] == 5
    assert rows["model.layers.0.mlp.up_proj.weight"]["max_rank"] == 30
