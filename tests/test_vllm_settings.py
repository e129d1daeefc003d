"""vLLM rollouts and evaluation (issue 15, item 7): vLLM does not install on these machines, so the tests
check what the workflow hands TRL (the resolved configs of GRPO, RLOO and Online DPO) and that a config
asking for vLLM where it cannot be imported stops at the config check, naming the package."""

import importlib.util

import pytest
import yaml

from subnet_rl.algorithms import trl_arguments, trl_config
from subnet_rl.config import RunSpec, check_references
from subnet_rl.settings import RolloutSettings

COMMON = dict(output_dir="/tmp/unused", use_cpu=True, bf16=False, report_to="none", max_steps=1)


def _config(**generation):
    config = yaml.safe_load(open(".test/config.yaml"))
    config["generation"] = generation
    # lengths in tokens, as the training job hands them to TRL once it has measured `auto` from its data
    config.setdefault("training", {}).update(max_prompt_length=32, max_length=64)
    for algorithm in ("grpo", "rloo", "online_dpo"):
        config["runs"][f"{algorithm}-x"] = {"algorithm": algorithm, "lr": 1e-3, "steps": 2, "seed": 1,
                                            "dataset": "addition"}
    return config


@pytest.mark.parametrize("algorithm", ["grpo", "rloo", "online_dpo"])
def test_vllm_settings_reach_the_trl_config_of_every_online_algorithm(algorithm):
    config = _config(engine="vllm", vllm_mode="colocate", gpu_memory_utilization=0.45, tensor_parallel_size=2)
    spec = RunSpec.from_config(config, f"{algorithm}-x")
    args = trl_config(spec, COMMON)
    assert (args.use_vllm, args.vllm_mode, args.vllm_gpu_memory_utilization, args.vllm_tensor_parallel_size) == (
        True, "colocate", 0.45, 2)
    server = trl_config(RunSpec.from_config(_config(engine="vllm", vllm_mode="server"), f"{algorithm}-x"), COMMON)
    assert server.use_vllm and server.vllm_mode == "server"
    plain = trl_config(RunSpec.from_config(_config(), f"{algorithm}-x"), COMMON)
    assert plain.use_vllm is False


@pytest.mark.parametrize("algorithm", ["dpo", "kto", "orpo", "simpo", "sft"])
def test_offline_algorithms_have_no_rollouts(algorithm):
    """An offline algorithm's settings hold no rollout engine, and its TRL config is told nothing of vLLM (the
    `generation` section does not reach it)."""
    config = _config(engine="vllm")
    config["runs"]["offline"] = {"algorithm": algorithm, "lr": 1e-3, "steps": 1, "seed": 0, "dataset": "addition"}
    spec = RunSpec.from_config(config, "offline")
    assert not isinstance(spec.settings, RolloutSettings)
    assert not any("vllm" in key for key in trl_arguments(spec, COMMON))
    with pytest.raises(AttributeError, match=f"{algorithm} has no setting 'generation_engine'"):
        spec.generation_engine  # noqa: B018


def test_hf_rollouts_by_default():
    spec = RunSpec.from_dict(dict(name="g", algorithm="grpo", lr=1e-3, steps=1, seed=0, dataset="x"))
    assert trl_arguments(spec, COMMON)["use_vllm"] is False


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
@pytest.mark.parametrize("section,key", [("generation", "generation.engine"), ("evaluate", "evaluate.engine")])
def test_asking_for_vllm_where_it_cannot_be_imported_stops_at_the_config_check(section, key):
    config = _config()
    config.setdefault(section, {})["engine"] = "vllm"
    with pytest.raises(ValueError, match=rf"{key}: 'vllm' needs the Python package 'vllm'"):
        check_references(config)
    config[section]["engine"] = "hf"
    check_references(config)
