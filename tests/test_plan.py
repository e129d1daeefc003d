"""The memory plan (src/subnet_rl/plan/): its arithmetic, where shapes come from, `auto` sharding, the
`subnet-rl plan` command, the workflow's refusal, and the plan against a measured CPU peak."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from subnet_rl import plan as memory
from subnet_rl.cli import main
from subnet_rl.config import RunSpec
from subnet_rl.plan import (GiB, PlanError, check_job, choose_sharding, embedded_shape, model_shape,
                            plan_config, plan_job, plan_run, plan_terms, shape_from_checkpoint, shape_from_hf_config)

REPO = Path(__file__).resolve().parents[1]

# Llama-3.1-8B (meta-llama/Llama-3.1-8B config.json) and Qwen2.5-Math-7B as transformers configs.
LLAMA_8B = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
            "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": False}
QWEN_7B = {"model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
           "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064, "tie_word_embeddings": False}
P_8B = 8_030_261_248


def spec(algorithm="sft", **kw) -> RunSpec:
    return RunSpec.from_dict({"name": "r", "algorithm": algorithm, "lr": 1e-6, "steps": 1, "seed": 0, "dataset": "d",
                      "batch_size": 1, "max_length": 512, **kw})


@pytest.fixture(scope="module")
def llama():
    return shape_from_hf_config(LLAMA_8B, "test")


# -- shapes ------------------------------------------------------------------------------------------
def test_parameters_from_dimensions_match_the_published_counts():
    assert shape_from_hf_config(LLAMA_8B).parameters == P_8B
    qwen = shape_from_hf_config(QWEN_7B)
    assert qwen.qkv_bias and qwen.parameters == 7_615_616_512
    assert qwen.root_parameters == 2 * 152064 * 3584 + 3584


def test_embedded_shape_is_the_model_build_tiny_model_builds(tmp_path):
    from subnet_rl.models import SPECIAL_TOKENS, TinyModelSpec, build_char_tokenizer, build_tiny_model, save_checkpoint
    from subnet_rl.tasks.addition import ALPHABET

    assert memory.EMBEDDED_DEFAULTS == dataclasses.asdict(TinyModelSpec())
    assert memory.EMBEDDED_SPECIAL_TOKENS == len(SPECIAL_TOKENS)
    embedded = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["model"]["embedded"]
    tokenizer = build_char_tokenizer(ALPHABET)
    model = build_tiny_model(TinyModelSpec(**embedded), tokenizer, seed=0)
    shape = embedded_shape(embedded)
    assert shape.parameters == sum(p.numel() for p in model.parameters())
    assert shape.vocab_size == len(tokenizer)
    llama = {**embedded, "architecture": "llama"}
    assert embedded_shape(llama).parameters == sum(
        p.numel() for p in build_tiny_model(TinyModelSpec(**llama), tokenizer, seed=0).parameters())
    save_checkpoint(model, tokenizer, tmp_path / "tiny")
    on_disk = shape_from_checkpoint(tmp_path / "tiny")  # config.json + safetensors headers
    assert on_disk.parameters == shape.parameters and on_disk.tied_embeddings
    assert (on_disk.hidden_size, on_disk.num_layers, on_disk.vocab_size) == (shape.hidden_size, shape.num_layers,
                                                                             shape.vocab_size)


def _snapshot(cache: Path, name: str, config: dict) -> Path:
    repo = cache / f"models--{name.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps(config))
    return snapshot


def test_shape_comes_from_config_json_then_the_shape_block_else_unknown(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    block = {"hidden_size": 64, "num_layers": 2, "vocab_size": 100, "intermediate_size": 128, "num_kv_heads": 2,
             "head_dim": 16}
    hub = {"source": "hub", "name": "org/big", "shape": block}
    assert model_shape("big", hub, tmp_path).source == "models.big.shape"
    assert model_shape("start", hub, tmp_path).source == "model.shape"
    assert model_shape("big", {"source": "hub", "name": "org/big"}, tmp_path) is None  # unknown until fetched
    snapshot = _snapshot(tmp_path / "hf" / "hub", "org/big", LLAMA_8B)
    found = model_shape("big", hub, tmp_path)  # the cached config.json wins over the block
    assert found.parameters == P_8B and found.source == str(snapshot / "config.json")
    # A fetched start checkpoint of this model (its provenance names it) is read first.
    fetched = tmp_path / "results" / "checkpoints" / "base" / "big"
    fetched.mkdir(parents=True)
    (fetched / "config.json").write_text(json.dumps(QWEN_7B))
    (fetched / "provenance.json").write_text(json.dumps({"name": "org/other"}))
    assert model_shape("big", hub, tmp_path).parameters == P_8B  # another model's folder: ignored
    (fetched / "provenance.json").write_text(json.dumps({"name": "org/big"}))
    assert model_shape("big", hub, tmp_path).parameters == 7_615_616_512
    local = tmp_path / "local"
    local.mkdir()
    (local / "config.json").write_text(json.dumps(QWEN_7B))
    assert model_shape("x", {"source": "local", "name": str(local)}, tmp_path).qkv_bias


# -- arithmetic --------------------------------------------------------------------------------------
def test_ddp_fp32_adamw_is_16_bytes_per_parameter(llama):
    terms = plan_terms(spec(gradient_checkpointing=True), llama)
    assert (terms.weights, terms.gradients, terms.optimizer) == (4 * P_8B, 4 * P_8B, 8 * P_8B)
    assert 128e9 < terms.total < 140e9  # the ~130 GB of an 8B full finetune per replica
    assert terms.runtime == memory.CUDA_RUNTIME_BYTES and terms.reference == terms.masks == terms.comm == 0
    # More than one DDP process: the reducer's buckets are another copy of the gradients.
    assert plan_terms(spec(), llama, world=8).comm == 4 * P_8B


def test_bf16_weights_halve_weights_gradients_and_optimizer(llama):
    terms = plan_terms(spec(precision="bf16"), llama)
    assert (terms.weights, terms.gradients, terms.optimizer) == (2 * P_8B, 2 * P_8B, 4 * P_8B)
    fp32 = plan_terms(spec(), llama)
    assert terms.activations < fp32.activations
    # Autocast keeps fp32 weights and states and adds bf16 copies of the weights.
    autocast = plan_terms(spec(autocast="bf16"), llama)
    assert autocast.optimizer == 8 * P_8B and autocast.weights == 4 * P_8B + 2 * P_8B


def test_the_optimizer_state_follows_the_optimizer_setting(llama):
    """AdamW holds two moments per parameter; plain SGD none, only a copy of the decayed gradients at its
    step when weight_decay > 0. The plan of a config's job follows the run's setting."""
    adamw, sgd = plan_terms(spec(), llama), plan_terms(spec(optimizer="sgd"), llama)
    assert (adamw.optimizer, sgd.optimizer) == (8 * P_8B, 0)
    assert adamw.total - sgd.total == 8 * P_8B and sgd.backward_end == adamw.backward_end == 4 * P_8B
    decayed = plan_terms(spec(optimizer="sgd", weight_decay=0.1), llama)
    assert decayed.backward_end == 4 * P_8B + 4 * llama.decayed_parameters
    assert plan_terms(spec(weight_decay=0.1), llama).backward_end == 4 * P_8B  # fused AdamW: no copy
    sharded = plan_terms(spec(optimizer="sgd", weight_decay=0.1), llama, world=8, sharding="fsdp2")
    assert sharded.optimizer == 0 and sharded.backward_end == 4 * P_8B // 8 + 4 * llama.decayed_parameters // 8
    config = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
    config["runs"] = {name: run for name, run in config["runs"].items() if run["algorithm"] == "sft"}
    config["runs"] = {**config["runs"], **{f"{n}-sgd": {**r, "optimizer": "sgd"} for n, r in config["runs"].items()}}
    plans = {p.run: p for p in plan_config(config) if p.variant == "full"}
    assert plans and all(p.terms.optimizer == 0 for n, p in plans.items() if n.endswith("-sgd"))
    assert all(p.terms.optimizer > 0 for n, p in plans.items() if not n.endswith("-sgd"))


def test_fsdp2_divides_by_world_size_plus_unsharded_layers(llama):
    ddp = plan_terms(spec(gradient_checkpointing=True), llama, world=8)
    fsdp = plan_terms(spec(gradient_checkpointing=True), llama, world=8, sharding="fsdp2")
    assert fsdp.weights == 4 * P_8B // 8 and fsdp.optimizer == 8 * P_8B // 8 and fsdp.gradients == 4 * P_8B // 8
    assert fsdp.comm == (llama.root_parameters + 3 * llama.layer_parameters) * 4  # unsharded root and layers
    assert fsdp.comm >= 4 * llama.layer_parameters and ddp.comm == 4 * P_8B  # DDP: gradient buckets
    assert fsdp.activations == ddp.activations and fsdp.logits == ddp.logits  # per GPU whatever the sharding
    assert fsdp.total == fsdp.static + max(fsdp.backward_start, fsdp.backward_end)
    assert 16 * P_8B / 8 < fsdp.total < 16 * P_8B / 8 + fsdp.comm + fsdp.runtime + fsdp.activations + fsdp.logits
    assert fsdp.total < ddp.total / 4


def test_masks_cost_a_byte_per_parameter_plus_start_copies_with_weight_decay(llama):
    assert plan_terms(spec(), llama).masks == 0  # the full run has none
    assert plan_terms(spec(), llama, subnetwork=True).masks == P_8B
    decayed = plan_terms(spec(weight_decay=0.1), llama, subnetwork=True).masks
    assert decayed == P_8B + 4 * llama.decayed_parameters
    assert P_8B - llama.decayed_parameters == 32 * 2 * 4096 + 4096  # norms are not decayed
    assert plan_terms(spec(), llama, subnetwork=True, world=8, sharding="fsdp2").masks == P_8B // 8


def test_step_sparsity_costs_one_bf16_copy_per_replica_or_shard(llama):
    """The recorder's bf16 copy of the weights: 2 bytes per parameter whatever the weights' precision, per
    replica under DDP, of the shard under FSDP2; held all along. Off (the default), the plan is as before:
    no such term in its dict, the same total."""
    off, on = plan_terms(spec(), llama), plan_terms(spec(step_sparsity=True), llama)
    assert (off.step_sparsity, on.step_sparsity) == (0, 2 * P_8B)
    assert "step_sparsity" not in off.as_dict() and on.as_dict()["step_sparsity"] == 2 * P_8B
    assert on.total - off.total == 2 * P_8B and on.static - off.static == 2 * P_8B
    assert plan_terms(spec(step_sparsity=True, precision="bf16"), llama).step_sparsity == 2 * P_8B
    assert plan_terms(spec(step_sparsity=True), llama, world=8).step_sparsity == 2 * P_8B  # DDP: a replica each
    sharded = plan_terms(spec(step_sparsity=True), llama, world=8, sharding="fsdp2")
    assert sharded.step_sparsity == 2 * P_8B // 8
    assert sharded.total - plan_terms(spec(), llama, world=8, sharding="fsdp2").total == 2 * P_8B // 8
    # A config's job follows its run's setting, and the plan's table shows the term only when a job has it.
    config = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
    config["runs"] = {"sft-a": config["runs"]["sft-a"], "sft-b": {**config["runs"]["sft-a"], "step_sparsity": True}}
    plans = {p.run: p for p in plan_config(config) if p.variant == "full"}
    assert plans["sft-a"].terms.step_sparsity == 0
    assert plans["sft-b"].terms.step_sparsity == 2 * plans["sft-b"].shape.parameters
    assert "step_sparsity" in memory.format_table(plans.values())
    assert "step_sparsity" not in memory.format_table([plans["sft-a"]])


def test_reference_model_follows_the_algorithm(llama):
    assert plan_terms(spec("dpo"), llama).reference == 4 * P_8B
    assert plan_terms(spec("kto"), llama).reference == 4 * P_8B
    assert plan_terms(spec("grpo"), llama).reference == 0
    assert plan_terms(spec("grpo", kl_beta=0.04), llama).reference == 4 * P_8B
    assert plan_terms(spec("orpo"), llama).reference == plan_terms(spec("sft"), llama).reference == 0
    assert plan_terms(spec("dpo"), llama, world=8, sharding="fsdp2").reference == 4 * P_8B // 8


def test_grpo_generation_cache(llama):
    run = spec("grpo", batch_size=4, num_generations=4, gradient_accumulation_steps=16, max_prompt_length=1024,
               max_new_tokens=3072)
    terms = plan_terms(run, llama)
    completions = 4 * 4 * 16  # TRL generates the whole generation batch at once
    cache = 2 * 32 * 8 * 128 * (1024 + 3072) * completions * 4
    assert terms.generation == cache + 3 * completions * 128256 * 4
    assert plan_terms(run.replaced(gradient_accumulation_steps=1), llama).generation < terms.generation
    assert plan_terms(spec("sft"), llama).generation == 0
    # The cache is gone before the training forward: the peak holds the largest of the phases, gradients
    # meeting the activations only when they accumulate over micro-steps.
    assert terms.total == terms.static + max(terms.activations + terms.logits + terms.gradients,
                                             terms.gradients, terms.generation)
    single = plan_terms(run.replaced(gradient_accumulation_steps=1, max_new_tokens=8), llama)
    assert single.backward_start == single.activations + single.logits
    # Colocated vLLM keeps its share of the GPU instead; a vLLM server costs the training GPUs nothing.
    vllm = plan_terms(run.replaced(generation_engine="vllm"), llama, gpu_mem_gb=80)
    assert vllm.generation == 0 and vllm.vllm == int(0.3 * 80 * GiB)
    server = plan_terms(run.replaced(generation_engine="vllm", vllm_mode="server"), llama, gpu_mem_gb=80)
    assert server.vllm == server.generation == 0


def test_gradient_checkpointing_lowers_activations(llama):
    full = plan_terms(spec(batch_size=4, max_length=2048), llama)
    checkpointed = plan_terms(spec(batch_size=4, max_length=2048, gradient_checkpointing=True), llama)
    tokens = 4 * 2048
    per_layer = tokens * (4 * 4096 * 4 + (5 * 4096 + 2 * 8 * 128 + 4 * 14336) * 4)
    assert full.activations == 32 * per_layer + tokens * 4 * 4096 * 4 + tokens * 2048
    assert checkpointed.activations == 32 * tokens * 4096 * 4 + per_layer + tokens * 4 * 4096 * 4 + tokens * 2048
    assert checkpointed.activations < full.activations / 10


def test_logits_fused_tile_or_materialised():
    tiny = embedded_shape({})
    sft = plan_terms(spec(batch_size=64, max_length=9), tiny)
    scored = 64 * 8  # the head scores each position's next token
    assert sft.logits == scored * 32768 * 4 + 16 * 128 * 4 + scored * 128 * 4
    assert sft.logits > 5 * sft.activations  # TRL's tile is 32768 wide: the small model's largest term
    big = plan_terms(spec(batch_size=64, max_length=512), tiny)
    assert big.logits == 4096 * 32768 * 4 + 16 * 128 * 4 + 64 * 511 * 128 * 4
    orpo = plan_terms(spec("orpo", batch_size=64, max_length=9), tiny)
    assert orpo.logits == 3 * 2 * scored * 16 * 4  # chosen and rejected, logits materialised


# -- sharding and refusal ----------------------------------------------------------------------------
def test_choose_sharding(llama):
    run = spec(gradient_checkpointing=True)
    eight = plan_run(run, llama, gpus=8, gpu_mem_gb=80)
    assert choose_sharding(eight, 80) == "fsdp2" and eight.chosen == "fsdp2" and eight.fits
    assert choose_sharding(eight, 200) == "ddp"
    assert choose_sharding(eight, None) == "ddp"
    assert choose_sharding(plan_run(run, llama, gpus=1, gpu_mem_gb=80), 80) == "ddp"  # nothing to shard over
    assert choose_sharding(plan_run(run, llama, gpus=4, nodes=2, gpu_mem_gb=80), 80) == "fsdp2"
    pinned = plan_run(run.replaced(sharding="ddp"), llama, gpus=8, gpu_mem_gb=80)
    assert pinned.chosen == "ddp" and pinned.fits is False


def test_refusal_names_the_run_and_changes_that_fit(llama):
    pinned = plan_run(spec(sharding="ddp"), llama, gpus=8, gpu_mem_gb=80)
    with pytest.raises(PlanError) as err:
        memory.check_plans([pinned])
    message = str(err.value)
    assert "runs.r (full training)" in message and "gpu_mem_gb 80" in message
    assert "sharding: fsdp2" in message and "gradient_checkpointing" not in message.split("Change one of")[1]
    # One GPU, the 16 bytes per parameter alone over the memory: only more GPUs (FSDP2) help.
    static = memory.fixes(plan_run(spec(), llama, gpus=1, gpu_mem_gb=100))
    assert len(static) == 1 and static[0].startswith("more GPUs: resources.train.gpu: 2 (2 GPUs, FSDP2: ")
    # Activations over the memory: checkpointing, a smaller batch or more GPUs, each re-planned to fit.
    fixes = memory.fixes(plan_run(spec(batch_size=8, max_length=2048), llama, gpus=1, gpu_mem_gb=270))
    assert fixes[0].startswith("more GPUs: resources.train.gpu: 2 ")
    assert fixes[1] == "gradient_checkpointing: true (`runs.r.gradient_checkpointing`)"
    # batch 7 would fit alone, but accumulating over 2 micro-steps keeps the gradients beside the activations
    assert fixes[2].startswith("batch_size: 6 (gradient_accumulation_steps: 2 keeps the effective batch)")
    assert plan_run(spec(batch_size=6, gradient_accumulation_steps=2, max_length=2048), llama, gpus=1,
                    gpu_mem_gb=270).fits
    assert plan_run(spec(batch_size=7, max_length=2048), llama, gpus=1, gpu_mem_gb=270).fits
    assert not plan_run(spec(batch_size=7, gradient_accumulation_steps=2, max_length=2048), llama, gpus=1,
                        gpu_mem_gb=270).fits
    assert not plan_run(spec(batch_size=8, max_length=2048), llama, gpus=1, gpu_mem_gb=270).fits
    memory.check_plans([plan_run(spec(), llama, gpus=8, gpu_mem_gb=80)])  # fits: no error
    memory.check_plans([plan_run(spec(), None, gpus=8, gpu_mem_gb=1)])  # unknown shape: the job checks


def test_job_checks_its_fetched_config_json(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_8B))
    settings = {"gpus": 8, "nodes": 1, "cpu_processes": False, "gpu_mem_gb": 80}
    job = plan_job(spec(gradient_checkpointing=True), tmp_path, settings, mask=True)
    assert job.variant == "subnet" and job.chosen == "fsdp2" and job.terms.masks == P_8B // 8
    assert check_job(spec(gradient_checkpointing=True), tmp_path, settings).fits
    with pytest.raises(PlanError, match="runs.r"):
        check_job(spec(), tmp_path, {**settings, "gpu_mem_gb": 10})


# -- the command and the workflow --------------------------------------------------------------------
def _override(tmp_path, train: dict, name="resources.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"resources": {"train": train}}))
    return path


def test_cli_plans_the_paper_config(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no fetched checkpoints: the shape blocks count
    paper = str(REPO / "config" / "train-paper.yaml")
    assert main(["plan", "--configfile", paper]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("| tulu3", "| eurus"))]
    assert [r.split("|")[1:3] for r in rows] == [[" eurus2-7b-grpo ", " full    "], [" eurus2-7b-grpo ", " subnet  "],
                                                [" tulu3-8b-dpo   ", " full    "], [" tulu3-8b-dpo   ", " subnet  "]]
    assert "8,030,261,248 parameters" in out and "from model.shape" in out and "from models.eurus-2-7b-sft.shape" in out

    # As shipped: one node of 8 x 80 GB, FSDP2 chosen by `auto`, vLLM colocated for the GRPO rollouts.
    assert main(["plan", "--configfile", paper, "--json"]) == 0
    jobs = {(j["run"], j["variant"]): j for j in json.loads(capsys.readouterr().out)}
    assert all(j["sharding"] == "fsdp2" and j["fits"] for j in jobs.values()), jobs
    assert jobs["tulu3-8b-dpo", "subnet"]["terms"]["masks"] == P_8B // 8
    assert jobs["eurus2-7b-grpo", "full"]["terms"]["generation"] == 0  # vLLM holds the rollouts' cache
    # The same GRPO run sampling with `generate` at the original batch: 256 completions of 4096 tokens.
    hf = tmp_path / "hf.yaml"
    hf.write_text(yaml.safe_dump({"generation": {"engine": "hf"}, "runs": {"eurus2-7b-grpo": {
        **yaml.safe_load(open(paper))["runs"]["eurus2-7b-grpo"], "batch_size": 4, "gradient_accumulation_steps": 16}}}))
    assert main(["plan", "--configfile", paper, "--configfile", str(hf), "--json"]) == 1
    grpo = {(j["run"], j["variant"]): j for j in json.loads(capsys.readouterr().out)}["eurus2-7b-grpo", "full"]
    assert not grpo["fits"] and grpo["terms"]["generation"] > 80 * GiB
    assert main(["plan", "--configfile", paper, "--configfile", str(hf)]) == 1
    err = capsys.readouterr().err
    assert "runs.eurus2-7b-grpo (full training)" in err and "generation cache" in err and "batch_size: " in err
    assert "tulu3-8b-dpo" not in err


def test_cli_says_unknown_until_fetched(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    paper = yaml.safe_load((REPO / "config" / "train-paper.yaml").read_text())
    del paper["model"]["shape"], paper["models"]["eurus-2-7b-sft"]["shape"]
    (tmp_path / "paper.yaml").write_text(yaml.safe_dump(paper))
    small = _override(tmp_path, {"gpu": 1, "gpu_mem_gb": 1})
    assert main(["plan", "--configfile", "paper.yaml", "--configfile", str(small)]) == 0  # the job will check
    out = capsys.readouterr().out
    assert out.count("unknown until fetched") == 2 + 4  # two models, four jobs
    assert all(p.known is False for p in plan_config(paper))


@pytest.mark.e2e
def test_workflow_prints_plans_and_refuses_a_job_that_cannot_fit(tmp_path):
    from test_workflow import TEST_CONFIG, snakemake

    def config_with(train: dict) -> Path:
        config = yaml.safe_load(TEST_CONFIG.read_text())
        config["resources"] = {"train": train}
        path = tmp_path / f"config-{train['gpu_mem_gb']}.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    run = snakemake(tmp_path, "-n", configfile=config_with({"gpu": 1, "gpu_mem_gb": 80}))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for job in ("warmup (warmup)", "grpo-a (full)", "grpo-a (subnet)", "dpo-a (full)", "sft-a (full)"):
        assert f"memory plan: {job}: 1 GPU(s) x 1 node(s), ddp" in run.stderr, run.stderr[-3000:]
    assert "grpo-b (subnet)" not in run.stderr and "of 80: fits" in run.stderr

    refused = snakemake(tmp_path, "-n", configfile=config_with({"gpu": 1, "gpu_mem_gb": 0.52}))
    assert refused.returncode != 0
    err = refused.stdout + refused.stderr
    assert "runs.grpo-a (full training): memory plan" in err and "resources.train.gpu_mem_gb 0.52" in err
    assert ("Change one of: batch_size: 1 (gradient_accumulation_steps: 8 keeps the effective batch) "
            "(`runs.grpo-a.batch_size`)") in err
    assert "model.warmup (warmup training)" in err
    assert "train_full" not in refused.stdout  # stopped before any job was planned


def test_plan_is_within_30_percent_of_the_measured_peak_of_the_embedded_model(tmp_path, monkeypatch):
    """SFT on config/config.yaml's embedded model, 2 steps: the plan against every tensor the run allocates
    (torch profiler), model load included. Nothing here is fitted to this run."""
    import pandas as pd
    from torch.profiler import ProfilerActivity, profile

    from subnet_rl.data import synthetic_addition, write_dataset
    from subnet_rl.models import TinyModelSpec, build_char_tokenizer, build_tiny_model, save_checkpoint
    from subnet_rl.tasks.addition import ALPHABET
    from subnet_rl.training import train

    monkeypatch.setenv("HF_DEACTIVATE_ASYNC_LOAD", "1")  # the profiler misses the loader threads' allocations
    embedded = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["model"]["embedded"]
    tokenizer = build_char_tokenizer(ALPHABET)
    save_checkpoint(build_tiny_model(TinyModelSpec(**embedded), tokenizer, seed=0), tokenizer, tmp_path / "start")
    paths = {"train": tmp_path / "train.parquet", "test": tmp_path / "test.parquet"}
    write_dataset(synthetic_addition(2, 256, 8, seed=0), paths)
    data = pd.read_parquet(paths["train"])
    longest = max(len(p + a) for p, a in zip(data["prompt"], data["answer"], strict=True)) + 1  # one token a character, + EOS
    run = spec(batch_size=64, max_length=longest, max_prompt_length=longest, steps=2, lr=1e-4)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        train(run, tmp_path / "start", paths["train"], tmp_path / "out")
    live = peak = 0
    for _, nbytes in sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                            if e.name() == "[memory]"):
        live += nbytes
        peak = max(peak, live)
    planned = plan_terms(run, shape_from_checkpoint(tmp_path / "start"), device="cpu")
    assert 0.7 <= planned.total / peak <= 1.3, (planned.as_dict(), peak)


def test_plan_module_does_not_import_torch():
    code = ("import sys; import subnet_rl.plan as p; from subnet_rl.config import RunSpec; "
            "p.plan_terms(RunSpec.from_dict(dict(name='r', algorithm='sft', lr=1.0, steps=1, seed=0, dataset='d')), "
            "p.embedded_shape({})); "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False", "subnet_rl.plan imported torch"


# -- `auto` lengths: assumed when the workflow starts, measured when the job starts ---------------------------
def test_an_auto_length_is_planned_at_the_assumed_length_and_says_so(llama):
    auto, explicit = spec(max_length="auto"), spec(max_length=memory.ASSUMED_LENGTHS["max_length"])
    assert plan_terms(auto, llama) == plan_terms(explicit, llama)
    line = memory.plan_line(plan_run(auto, llama, gpus=8, gpu_mem_gb=80))
    assert line.endswith("; max_length `auto`: assumed 64 tokens until the job measures its data")
    assert "assumed" not in memory.plan_line(plan_run(explicit, llama, gpus=8, gpu_mem_gb=80))
    # GRPO's plan reads the prompts' length (its completions are max_new_tokens long), never max_length
    grpo = plan_run(spec("grpo", max_length=9, max_prompt_length="auto"), llama)
    assert grpo.assumed == {"max_prompt_length": 32}
    assert plan_run(spec("grpo", max_length="auto", max_prompt_length=32), llama).assumed == {}
    assert "* r (full); max_prompt_length `auto`: assumed 32 tokens" in memory.format_table([grpo])


def test_a_refusal_at_an_assumed_length_names_the_assumption_and_the_key(llama):
    with pytest.raises(PlanError) as err:
        memory.check_plans([plan_run(spec(max_length="auto", sharding="ddp"), llama, gpus=8, gpu_mem_gb=80)])
    assert "Planned at an assumed max_length 64 tokens: `runs.r.max_length` is `auto`" in str(err.value)


def test_the_launcher_plans_an_auto_job_again_with_the_lengths_of_its_data(tmp_path):
    """A job that fits at the assumed length and not at its data's is refused when it starts, before any
    training process, naming the run and the lengths measured."""
    import pandas as pd

    from subnet_rl.launch import launch_of
    from subnet_rl.models import TinyModelSpec, build_char_tokenizer, build_tiny_model, save_checkpoint
    from subnet_rl.tasks.addition import ALPHABET

    tokenizer = build_char_tokenizer(ALPHABET)
    save_checkpoint(build_tiny_model(TinyModelSpec(), tokenizer, seed=0), tokenizer, tmp_path / "start")
    data = tmp_path / "train.parquet"
    pd.DataFrame({"prompt": ["12+34=", "1+2="], "answer": ["9" * 293, "3"]}).to_parquet(data)  # 6 + 293 + EOS
    run = spec(max_length="auto", max_prompt_length="auto", batch_size=4)
    settings = {"gpus": 1, "nodes": 1, "cpu_processes": False}
    assumed = plan_job(run, tmp_path / "start", settings).total
    measured = plan_job(run.replaced(max_length=300, max_prompt_length=6), tmp_path / "start", settings).total
    assert assumed < measured
    between = {**settings, "gpu_mem_gb": (assumed + measured) / 2 / GiB}
    assert launch_of(run, tmp_path / "start", between).sharding == "ddp"  # no data: the assumed length fits
    with pytest.raises(PlanError) as err:
        launch_of(run, tmp_path / "start", between, data=data)
    message = str(err.value)
    assert "runs.r (full training): memory plan" in message
    assert f"measured from {data}: max_prompt_length 6, max_length 300 tokens" in message
    assert launch_of(run, tmp_path / "start", {**settings, "gpu_mem_gb": measured / GiB * 1.01}, data=data)
