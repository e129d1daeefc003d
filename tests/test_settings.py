"""The typed run settings (src/subnet_rl/settings.py): which keys a run may set, what a `training` default
reaches, the warmup's settings, the schema's one definition of each, and the values every config's TRL
trainers are built with, held against those the code passed before the settings were split (issue 16)."""

import json
from pathlib import Path

import pytest
import yaml

from subnet_rl import settings
from subnet_rl.algorithms import ALGORITHMS, get_algorithm, trl_arguments
from subnet_rl.config import RunSpec, coerce_scientific_notation, warmup_run
from subnet_rl.config.spec import RUN_KEYS
from subnet_rl import plan as memory
from subnet_rl.plan import OPTIONAL_TERMS, plan_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(str(p.relative_to(REPO)) for p in [*REPO.glob("config/*.yaml"), *REPO.glob(".test/*.yaml")])
BEFORE = json.loads((REPO / "tests" / "data" / "settings_before_issue16.json").read_text())
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
#: what tables and comparisons read of `RunSpec.as_dict()` whatever the algorithm.
READ_BY_EVERY_TABLE = {"name", "algorithm", "dataset", "model", "task", "reward", "eval_dataset", "regime", "lr", "steps",
                       "seed", "precision", "max_grad_norm"}


def _config(path: str) -> dict:
    return coerce_scientific_notation(yaml.safe_load((REPO / path).read_text()))


def _study(**sections) -> dict:
    config = _config(".test/config.yaml")
    config.update(sections)
    return config


def _specs(path: str) -> dict[str, RunSpec]:
    config = _config(path)
    specs = {name: RunSpec.from_config(config, name) for name in sorted(config.get("runs", {}))}
    if config.get("runs") and config.get("model", {}).get("warmup"):
        specs["<warmup>"] = warmup_run(config["model"]["warmup"])
    return specs


@pytest.mark.parametrize("path", CONFIGS)
def test_every_run_of_every_config_builds_and_round_trips(path):
    for name, spec in _specs(path).items():
        flat = spec.as_dict()
        assert RunSpec.from_dict(json.loads(json.dumps(flat))) == spec, name  # as the train rule's params
        assert READ_BY_EVERY_TABLE <= set(flat)
        assert set(flat) == {*RUN_KEYS, "name", "task", "reward", *settings.field_names(settings.TrainingSpec),
                             *settings.field_names(get_algorithm(spec.algorithm).settings)}


#: the configs that existed when the values were captured (a config added later has no "before")
CAPTURED = [path for path in CONFIGS if path in BEFORE["trl"]]


def test_the_capture_covers_every_config_of_its_day():
    assert len(CAPTURED) >= 6 and set(CAPTURED) == set(BEFORE["trl"])


#: the lengths the captured configs' runs had then where they set none (the defaults of the day). Since
#: issue 17 they default to `auto`, which the training job measures from its data before building the TRL
#: config (tests/test_auto_lengths.py); the memory plan assumes these values for `auto`.
CAPTURED_LENGTHS = {"max_prompt_length": 32, "max_length": 64}


@pytest.mark.parametrize("path", CAPTURED)
def test_every_trl_config_gets_the_values_it_got_before_the_settings_were_split(path, monkeypatch):
    """Each run's TRL config class and every argument it is built with (shared TrainingArguments included),
    and each job's memory plan, equal those of the code before issue 16 (tests/data, captured from it):
    the TRL arguments with the lengths of the day in place of `auto`, the plans as the workflow makes them."""
    import torch

    from subnet_rl.training import _common_args

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # captured on a machine without a GPU
    specs = _specs(path)
    assert set(specs) == set(BEFORE["trl"][path])
    assert memory.ASSUMED_LENGTHS == CAPTURED_LENGTHS
    for name, spec in specs.items():
        spec = spec.replaced(**{k: v for k, v in CAPTURED_LENGTHS.items() if getattr(spec, k) == "auto"})
        arguments = json.loads(json.dumps(trl_arguments(spec, _common_args(spec, "OUT")), default=list))
        config_class = get_algorithm(spec.algorithm).config.rpartition(".")[2]
        assert {"config_class": config_class, "arguments": arguments} == BEFORE["trl"][path][name], name
    # An observer added since (`OPTIONAL_TERMS`: .test/study.yaml's grpo-a records its step sparsity) adds its
    # own term, planned and tested in tests/test_plan.py; every other term and the rest of the total are as before.
    plans = {f"{p.run}/{p.variant}": {s: _without_observers(t) for s, t in p.by_sharding.items()}
             for p in plan_config(_config(path))} if specs else {}
    assert plans == BEFORE["plans"][path]


def _without_observers(terms) -> dict[str, int]:
    observers = {name: getattr(terms, name) for name in OPTIONAL_TERMS}
    return {**{k: v for k, v in terms.as_dict().items() if k not in observers},
            "total": terms.total - sum(observers.values())}


def test_a_setting_of_another_algorithm_is_refused_naming_the_run_the_key_and_the_known_keys():
    config = _study()
    config["runs"]["dpo-a"]["kl_beta"] = 0.04
    with pytest.raises(ValueError, match=r"runs\.dpo-a: unknown setting\(s\) \['kl_beta'\]; known: \[.*'dpo_beta'"):
        RunSpec.from_config(config, "dpo-a")
    config = _study(dpo={"num_generations": 4})
    with pytest.raises(ValueError, match=r"^dpo: unknown setting\(s\) \['num_generations'\]"):
        RunSpec.from_config(config, "dpo-a")
    with pytest.raises(ValueError, match=r"training: unknown setting\(s\) \['nosuch'\]"):
        RunSpec.from_config(_study(training={"nosuch": 1}), "sft-a")
    with pytest.raises(AttributeError, match="sft has no setting 'kl_beta'"):
        RunSpec.from_config(_study(), "sft-a").kl_beta  # noqa: B018


def test_a_training_default_reaches_the_runs_of_the_algorithms_that_have_it():
    config = _study(training={"max_new_tokens": 7, "dpo_beta": 0.3, "max_grad_norm": 0.5}, dpo={})
    grpo, dpo, sft = (RunSpec.from_config(config, name) for name in ("grpo-a", "dpo-a", "sft-a"))
    assert (grpo.max_new_tokens, dpo.dpo_beta) == (7, 0.3)
    assert grpo.max_grad_norm == dpo.max_grad_norm == sft.max_grad_norm == 0.5
    assert "dpo_beta" not in grpo.as_dict() and "max_new_tokens" not in dpo.as_dict()
    assert not {"max_new_tokens", "dpo_beta"} & set(sft.as_dict())
    config["dpo"] = {"dpo_beta": 0.2}  # the algorithm's section over `training`, the run entry over both
    assert RunSpec.from_config(config, "dpo-a").dpo_beta == 0.2
    config["runs"]["dpo-a"]["dpo_beta"] = 0.1
    assert RunSpec.from_config(config, "dpo-a").dpo_beta == 0.1


def test_the_warmup_is_an_sft_run_of_the_shared_settings_with_their_defaults():
    warmup = warmup_run({"dataset": "addition", "lr": 1e-3, "steps": 5})
    assert (warmup.name, warmup.algorithm, warmup.eval_dataset) == ("warmup", "sft", "addition")
    assert warmup.training == settings.TrainingSpec(lr=1e-3, steps=5, seed=0)
    assert (warmup.seed, warmup.batch_size, warmup.max_length, warmup.max_grad_norm) == (0, 64, "auto", 1.0)
    tuned = warmup_run({"dataset": "addition", "lr": 1e-3, "steps": 5, "max_grad_norm": 0.0, "precision": "bf16"})
    assert (tuned.max_grad_norm, tuned.precision) == (0.0, "bf16")
    with pytest.raises(ValueError, match="unknown setting.*'kl_beta'"):
        warmup_run({"dataset": "addition", "lr": 1e-3, "steps": 5, "kl_beta": 0.1})


# -- the schema's run settings are the dataclasses' ---------------------------------------------------
def _schema_keys(node: dict) -> set[str]:
    """The properties a schema node defines, through its allOf and $ref (one level of $defs)."""
    keys = set(node.get("properties", {}))
    for part in [*node.get("allOf", []), *([node] if "$ref" in node else [])]:
        if "$ref" in part:
            keys |= _schema_keys(SCHEMA["$defs"][part["$ref"].rpartition("/")[2]])
        elif part is not node:
            keys |= _schema_keys(part)
    return keys


def _settings_classes() -> list[type]:
    return [settings.TrainingSpec, *{a.settings for a in ALGORITHMS.values()}, settings.Sampling,
            settings.GroupSampling, settings.DPOBeta, settings.SFTTerm, settings.Pairs]


@pytest.mark.parametrize("cls", _settings_classes(), ids=lambda c: c.__name__)
def test_the_schema_defines_each_settings_class_with_its_fields(cls):
    """A field added to a settings class without the schema (or a schema key without a field) fails here;
    the rollout fields come from the `generation` section, which maps onto them key by key."""
    rollout = set(settings.field_names(settings.RolloutSettings))
    assert _schema_keys(SCHEMA["$defs"][cls.__name__]) == set(settings.field_names(cls)) - rollout
    generation = SCHEMA["properties"]["generation"]["properties"]
    assert {settings.GENERATION_KEYS[k] for k in generation} == rollout


def test_each_section_and_run_entry_refers_to_its_algorithms_settings():
    properties = SCHEMA["properties"]
    runs = properties["runs"]["additionalProperties"]
    by_algorithm = {part["if"]["properties"]["algorithm"]["const"]: part["then"]["$ref"]
                    for part in runs["allOf"] if "if" in part}
    for name, algorithm in ALGORITHMS.items():
        ref = f"#/$defs/{algorithm.settings.__name__}"
        assert by_algorithm[name] == ref
        assert {"$ref": ref} in properties[name]["allOf"] and {"$ref": ref} in properties["training"]["allOf"]
    assert set(runs["properties"]) == set(RUN_KEYS)
    assert set(runs["required"]) == {"algorithm", "dataset", *settings.RUN_OWN}
    assert _schema_keys(properties["model"]["properties"]["warmup"]) == {"dataset",
                                                                         *settings.field_names(settings.TrainingSpec)}


def test_the_optimizer_is_the_trainers_own_and_adamw_passes_the_trainers_default(monkeypatch):
    """`optimizer: sgd` names TrainingArguments' "sgd"; the default adamw passes no `optim`, which the Trainer
    resolves to its fused AdamW (so every existing config keeps its arguments, pinned above)."""
    import jsonschema
    import torch
    from transformers import TrainingArguments

    from subnet_rl.training import _common_args

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    sgd = RunSpec.from_config(_study(training={"optimizer": "sgd"}), "grpo-a")
    adamw = RunSpec.from_config(_study(), "grpo-a")
    assert (sgd.optimizer, adamw.optimizer) == ("sgd", "adamw")
    assert _common_args(sgd, "OUT")["optim"] == "sgd" and "optim" not in _common_args(adamw, "OUT")
    assert TrainingArguments("OUT", use_cpu=True).optim == "adamw_torch_fused"
    with pytest.raises(ValueError, match=r"optimizer 'adam': one of \('adamw', 'sgd'\)"):
        RunSpec.from_config(_study(training={"optimizer": "adam"}), "sft-a")
    node = SCHEMA["$defs"]["TrainingSpec"]["properties"]["optimizer"]
    assert node["enum"] == list(settings.OPTIMIZERS)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate("adam", node)
