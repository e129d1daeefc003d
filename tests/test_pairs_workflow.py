"""The checkpoint-pair side of the workflow: the paper's pairs as a DAG, and an offline run of the
download -> diff -> table chain against a pre-populated hub cache."""

import json

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import save_file

from test_workflow import REPO, planned_outputs, snakemake

pytestmark = pytest.mark.e2e


def test_paper_config_dag_downloads_each_model_once_and_diffs_every_pair(tmp_path):
    config = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    pairs = config["checkpoint_pairs"]
    models = {p[side]["name"] for p in pairs.values() for side in ("before", "after")}
    assert len(pairs) == 17 and "deepseek-ai/DeepSeek-R1-Zero" in models
    result = snakemake(tmp_path, "-n", configfile=REPO / "config" / "paper.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    planned = planned_outputs(result.stdout)
    downloads = {p for p in planned if p.startswith("results/downloads/")}
    assert downloads == {f"results/downloads/{m.replace('/', '--')}.json" for m in models}
    assert {p for p in planned if p.startswith("results/diff/")} == {f"results/diff/pairs/{n}.parquet" for n in pairs}
    assert "results/tables/pairs.md" in planned
    assert not [p for p in planned if "checkpoints" in p], "the paper config must not run the demo study"


def _hub_model(cache, repo_id, tensors, commit):
    snapshot = cache / f"models--{repo_id.replace('/', '--')}" / "snapshots" / commit
    snapshot.mkdir(parents=True)
    save_file(tensors, snapshot / "model.safetensors")
    (snapshot / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text(commit)


def test_pairs_run_offline_from_a_hub_cache(tmp_path):
    cache = tmp_path / "hub"
    base = {"model.embed_tokens.weight": torch.zeros(10, 4), "model.layers.0.mlp.up_proj.weight": torch.zeros(8, 4)}
    tuned = {k: v.clone() for k, v in base.items()}
    tuned["model.layers.0.mlp.up_proj.weight"][:2] = 1.0           # 8 of 72 shared entries change
    resized = {**tuned, "model.embed_tokens.weight": torch.zeros(12, 4)}  # vocabulary grown by 2 rows
    _hub_model(cache, "org/base", base, "a" * 40)
    _hub_model(cache, "org/tuned", tuned, "b" * 40)
    _hub_model(cache, "org/resized", resized, "c" * 40)
    config = {
        "downloads": {"cache_dir": str(cache)},
        "checkpoint_pairs": {
            "tuned": {"algorithm": "DPO", "before": {"source": "hub", "name": "org/base"},
                      "after": {"source": "hub", "name": "org/tuned"}, "published": {"tol=1e-05": 90.0}},
            "resized": {"algorithm": "SFT", "before": {"source": "hub", "name": "org/base"},
                        "after": {"source": "hub", "name": "org/resized"}},
        },
    }
    (tmp_path / "pairs.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, configfile=tmp_path / "pairs.yaml", env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    record = json.loads((tmp_path / "results" / "downloads" / "org--base.json").read_text())
    assert record["revision"] == "a" * 40
    table = pd.read_csv(tmp_path / "results" / "tables" / "pairs.csv").set_index("pair")
    assert table.loc["tuned", "ours tol=1e-05"] == pytest.approx(100 * 64 / 72)
    assert table.loc["tuned", "paper tol=1e-05"] == 90.0
    assert table.loc["resized", "tensors not fully compared"] == 1
    assert table.loc["tuned", "before"] == "org/base@" + "a" * 12
