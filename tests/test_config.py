import pytest
import yaml

from subnet_rl.config import RunSpec, WarmupSpec, check_references, coerce_scientific_notation, sort_keys_in_place


def _config():
    with open("config/config.yaml") as f:
        return yaml.safe_load(f)


def test_run_spec_merges_training_algorithm_and_run():
    config = _config()
    spec = RunSpec.from_config(config, "grpo-learn-bf16")
    assert (spec.algorithm, spec.lr, spec.precision, spec.num_generations) == ("grpo", 1e-4, "bf16", 8)
    config["runs"]["grpo-learn-bf16"]["num_generations"] = 4
    assert RunSpec.from_config(config, "grpo-learn-bf16").num_generations == 4
    assert RunSpec(**spec.as_dict()) == spec


def test_default_config_has_both_regimes_with_controls():
    specs = [RunSpec.from_config(_config(), r) for r in _config()["runs"]]
    for regime in ("learning", "paper"):
        algorithms = {s.algorithm for s in specs if s.regime == regime}
        assert algorithms == {"grpo", "dpo", "sft"}
        assert len({s.seed for s in specs if s.regime == regime and s.algorithm == "grpo"}) >= 2
    assert WarmupSpec(**_config()["model"]["warmup"]).as_run().algorithm == "sft"


def test_coerce_scientific_notation_only_touches_numbers():
    config = {"a": "1e-4", "b": ["2E3", "abc"], "c": {"d": "-3.5e-2", "e": "1e"}}
    assert coerce_scientific_notation(config) == {"a": 1e-4, "b": [2000.0, "abc"], "c": {"d": -0.035, "e": "1e"}}


def test_check_references_names_the_key():
    config = _config()
    config["runs"]["grpo-learn-s1"]["dataset"] = "nosuch"
    with pytest.raises(ValueError, match=r"runs\.grpo-learn-s1\.dataset: 'nosuch'"):
        check_references(config)


def test_sort_keys_in_place_makes_key_order_irrelevant():
    a = {"b": {"y": 1, "x": [{"k": 2, "j": 3}]}, "a": 0}
    b = {"a": 0, "b": {"x": [{"j": 3, "k": 2}], "y": 1}}
    assert repr(sort_keys_in_place(a)) == repr(sort_keys_in_place(b))
