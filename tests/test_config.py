import os
from pathlib import Path

import pytest
import yaml

SCHEMA_FILE = str(Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml")

from subnet_rl.config import RunSpec, check_references, coerce_scientific_notation, sort_keys_in_place, warmup_run


def _config():
    with open("config/config.yaml") as f:
        return yaml.safe_load(f)


def test_run_spec_merges_training_algorithm_and_run():
    config = _config()
    spec = RunSpec.from_config(config, "grpo-learn-bf16")
    assert (spec.algorithm, spec.lr, spec.precision, spec.num_generations) == ("grpo", 1e-4, "bf16", 8)
    config["runs"]["grpo-learn-bf16"]["num_generations"] = 4
    assert RunSpec.from_config(config, "grpo-learn-bf16").num_generations == 4
    assert RunSpec.from_dict(spec.as_dict()) == spec


def test_default_config_has_both_regimes_with_controls():
    specs = [RunSpec.from_config(_config(), r) for r in _config()["runs"]]
    for regime in ("learning", "paper"):
        algorithms = {s.algorithm for s in specs if s.regime == regime}
        assert algorithms == {"grpo", "dpo", "sft"}
        assert len({s.seed for s in specs if s.regime == regime and s.algorithm == "grpo"}) >= 2
    assert warmup_run(_config()["model"]["warmup"]).algorithm == "sft"


def test_coerce_scientific_notation_only_touches_numbers():
    config = {"a": "1e-4", "b": ["2E3", "abc"], "c": {"d": "-3.5e-2", "e": "1e"}}
    assert coerce_scientific_notation(config) == {"a": 1e-4, "b": [2000.0, "abc"], "c": {"d": -0.035, "e": "1e"}}


def test_check_references_names_the_key():
    config = _config()
    config["runs"]["grpo-learn-s1"]["dataset"] = "nosuch"
    with pytest.raises(ValueError, match=r"runs\.grpo-learn-s1\.dataset: 'nosuch'"):
        check_references(config)


def _study(**runs):
    """The structure of .test/config.yaml as a dict, plus gsm8k and preference datasets (hub: nothing read)."""
    return {
        "datasets": {
            "addition": {"source": "synthetic", "digits": 2, "n_train": 256, "n_test": 32, "seed": 0},
            "gsm8k": {"source": "hub", "path": "openai/gsm8k", "name": "main", "task": "gsm8k",
                      "columns": {"prompt": "question", "answer": "answer"}},
            "prefs": {"source": "hub", "path": "some/prefs", "task": "preference",
                      "columns": {"chosen": "chosen", "rejected": "rejected"}},
        },
        "model": {"source": "embedded", "seed": 0,
                  "embedded": {"architecture": "qwen2", "hidden_size": 16, "intermediate_size": 32, "num_layers": 1,
                               "num_heads": 2, "num_kv_heads": 1, "max_positions": 16},
                  "warmup": {"dataset": "addition", "lr": 3.0e-3, "steps": 40, "batch_size": 32, "seed": 0}},
        "training": {"precision": "fp32", "batch_size": 8, "max_new_tokens": 4},
        "grpo": {"num_generations": 4},
        "dpo": {"dpo_beta": 0.1, "pairs": "dataset"},
        "runs": runs or {
            "grpo-a": {"algorithm": "grpo", "lr": 1.0e-3, "steps": 3, "seed": 1, "dataset": "addition"},
            "dpo-a": {"algorithm": "dpo", "lr": 1.0e-3, "steps": 3, "seed": 1, "dataset": "addition"},
            "sft-a": {"algorithm": "sft", "lr": 1.0e-3, "steps": 3, "seed": 1, "dataset": "addition"},
        },
    }


def _run(dataset, algorithm="grpo", **extra):
    return {"algorithm": algorithm, "lr": 1.0e-3, "steps": 3, "seed": 1, "dataset": dataset, **extra}


def test_base_study_and_scoring_tasks_pass():
    """Runs on each scoring task (and DPO on preference data scored on gsm8k) pass the checks, each with the
    task, reward and eval dataset its datasets give it."""
    assert check_references(_study()) is None
    config = _study(g=_run("gsm8k"), d=_run("prefs", "dpo", eval_dataset="gsm8k"), s=_run("gsm8k", "sft"))
    assert check_references(config) is None
    resolved = {name: (s.task, s.reward, s.eval_dataset) for name in "gds" for s in [RunSpec.from_config(config, name)]}
    assert resolved == {"g": ("gsm8k", "binary", "gsm8k"), "d": ("preference", None, "gsm8k"),
                        "s": ("gsm8k", "binary", "gsm8k")}


@pytest.mark.parametrize("algorithm", ["grpo", "sft"])
def test_run_on_preference_data_with_a_scoring_algorithm_is_refused(algorithm):
    with pytest.raises(ValueError, match=rf"runs\.p\.dataset: {algorithm} needs .*'prefs' has task 'preference'"):
        check_references(_study(p=_run("prefs", algorithm, eval_dataset="gsm8k")))


def test_reward_the_task_lacks_is_refused():
    config = _study()
    config["datasets"]["gsm8k"]["reward"] = "partial"
    with pytest.raises(ValueError, match=r"datasets\.gsm8k\.reward: task 'gsm8k' has no 'partial' reward"):
        check_references(config)


def test_parquet_file_without_the_mapped_column_is_refused(tmp_path):
    import pandas as pd

    pd.DataFrame({"question": ["q"], "solution": ["#### 1"]}).to_parquet(tmp_path / "d.parquet")
    files = {"train": str(tmp_path / "d.parquet"), "test": str(tmp_path / "d.parquet")}
    config = _study()
    config["datasets"]["mine"] = {"source": "parquet", "task": "gsm8k", "files": files,
                                  "columns": {"prompt": "question"}}  # answer looked up as 'answer'
    with pytest.raises(ValueError, match=r"datasets\.mine\.columns: .*\['answer'\].*'solution'"):
        check_references(config)
    config["datasets"]["mine"]["columns"]["answer"] = "solution"
    check_references(config)


def test_hub_dataset_without_a_column_map_is_refused():
    config = _study()
    del config["datasets"]["gsm8k"]["columns"]["answer"]
    with pytest.raises(ValueError, match=r"datasets\.gsm8k\.columns: task 'gsm8k' needs .*\['answer'\]"):
        check_references(config)
    del config["datasets"]["prefs"]["columns"]
    config["datasets"]["gsm8k"]["columns"]["answer"] = "answer"
    with pytest.raises(ValueError, match=r"datasets\.prefs\.columns"):
        check_references(config)


def _tokenizer_folder(path, chat_template_file=False):
    path.mkdir()
    (path / "tokenizer_config.json").write_text('{"tokenizer_class": "PreTrainedTokenizerFast"}')
    if chat_template_file:
        (path / "chat_template.jinja").write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    return str(path)


def test_chat_prompt_format_needs_a_chat_template(tmp_path):
    config = _study(g=_run("gsm8k"))
    config["datasets"]["gsm8k"]["prompt_format"] = "chat"
    with pytest.raises(ValueError, match=r"datasets\.gsm8k\.prompt_format: 'chat' .*embedded model"):
        check_references(config)

    config["models"] = {"plain": {"source": "local", "name": _tokenizer_folder(tmp_path / "plain")},
                        "chatty": {"source": "local", "name": _tokenizer_folder(tmp_path / "chatty", True)}}
    config["runs"]["g"]["model"] = "plain"
    with pytest.raises(ValueError, match=r"datasets\.gsm8k\.prompt_format: 'chat' .*plain has none"):
        check_references(config)
    config["runs"]["g"]["model"] = "chatty"
    check_references(config)

    # the eval dataset is rendered with the run's model too
    config = _study(g=_run("addition", eval_dataset="gsm8k"))
    config["datasets"]["gsm8k"]["prompt_format"] = "chat"
    with pytest.raises(ValueError, match=r"datasets\.gsm8k\.prompt_format"):
        check_references(config)


def test_eval_dataset_must_score():
    with pytest.raises(ValueError, match=r"runs\.g\.eval_dataset: dataset 'prefs' has task 'preference'"):
        check_references(_study(g=_run("addition", eval_dataset="prefs")))


def test_run_model_must_be_under_models():
    with pytest.raises(ValueError, match=r"runs\.g\.model: 'qwen' is not under 'models'"):
        check_references(_study(g=_run("addition", model="qwen")))


def test_run_spec_resolves_task_reward_and_eval_dataset_from_the_dataset():
    config = _study(a=_run("addition"), g=_run("gsm8k", eval_dataset="addition"), d=_run("prefs", "dpo"))
    a, g, d = (RunSpec.from_config(config, name) for name in "agd")
    assert (a.task, a.reward, a.eval_dataset) == ("addition", "partial", "addition")
    assert (g.task, g.reward, g.eval_dataset) == ("gsm8k", "binary", "addition")
    assert (d.task, d.reward) == ("preference", None)
    config["datasets"]["addition"]["reward"] = "binary"
    assert RunSpec.from_config(config, "a").reward == "binary"


def test_sort_keys_in_place_makes_key_order_irrelevant():
    a = {"b": {"y": 1, "x": [{"k": 2, "j": 3}]}, "a": 0}
    b = {"a": 0, "b": {"x": [{"j": 3, "k": 2}], "y": 1}}
    assert repr(sort_keys_in_place(a)) == repr(sort_keys_in_place(b))


def test_a_hub_start_model_under_models_keeps_the_hub_reachable(monkeypatch, tmp_path):
    """Only a config with no hub source at all goes offline; `models` entries count too."""
    from subnet_rl.jobs import configure_hub_environment

    monkeypatch.chdir(tmp_path)
    local = {"model": {"source": "local", "name": "x"}, "datasets": {"d": {"source": "synthetic"}}}
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
    configure_hub_environment({**local, "models": {"big": {"source": "hub", "name": "org/model"}}})
    assert "HF_HUB_OFFLINE" not in os.environ
    configure_hub_environment(local)
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_the_config_schema_offers_exactly_the_registered_algorithms():
    """An algorithm added to the registry is usable from the config, and each has a defaults section."""
    from pathlib import Path

    import yaml

    from subnet_rl.algorithms import ALGORITHMS

    schema = yaml.safe_load((Path(__file__).parents[1] / "workflow" / "schemas" / "config.schema.yaml").read_text())
    run = schema["properties"]["runs"]["additionalProperties"]["properties"]
    assert sorted(run["algorithm"]["enum"]) == sorted(ALGORITHMS)
    assert set(ALGORITHMS) <= set(schema["properties"])


def test_arithmetic_keys_belong_to_the_gsm8k_generator():
    """operations / second_digits / prompt_format shape the gsm8k generator's problems; reversed-digit addition
    has none of them, so the schema refuses them there."""
    from snakemake.utils import validate

    base = {"source": "synthetic", "digits": 2, "n_train": 8, "n_test": 4}
    for extra in ({"operations": ["+"]}, {"second_digits": 1}, {"prompt_format": "chat"}):
        with pytest.raises(Exception, match="second_digits|operations|prompt_format"):
            validate(_scoring({**base, **extra}), SCHEMA_FILE)
    validate(_scoring({**base, "task": "gsm8k", "operations": ["+"], "second_digits": 1, "prompt_format": "chat"}),
             SCHEMA_FILE)
    with pytest.raises(Exception, match="'\\*'"):
        validate(_scoring({**base, "task": "gsm8k", "operations": ["*"]}), SCHEMA_FILE)


def _scoring(dataset: dict) -> dict:
    """A config that scores the start model on one dataset (the smallest the schema accepts)."""
    return {"datasets": {"d": dataset}, "model": {"source": "local", "name": "some/folder"}}


@pytest.mark.parametrize("key, bad", [("max_length", "autoo"), ("max_length", 0), ("max_length", 1),
                                      ("max_prompt_length", 0), ("max_prompt_length", "Auto"),
                                      ("max_length", True)])
def test_a_length_that_is_neither_tokens_nor_auto_is_refused_naming_the_key(key, bad):
    """At config validation (the workflow's schema, before any job) and wherever a spec is built in code."""
    from pathlib import Path

    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    schema = str(Path(__file__).parents[1] / "workflow" / "schemas" / "config.schema.yaml")
    for where, config in (("training", _study()), ("runs']['sft-a", _study())):
        section = config["training"] if where == "training" else config["runs"]["sft-a"]
        section[key] = bad
        with pytest.raises(WorkflowError) as err:
            validate(config, schema=schema)
        assert f"On instance['{where}']['{key}']:" in str(err.value)
        with pytest.raises(ValueError, match=rf"^{key} {bad!r}: a whole number of tokens >= \d, or 'auto'"):
            RunSpec.from_config(config, "sft-a")
    whole_float = _study()
    whole_float["training"]["max_length"] = 16.0  # the schema's integer allows it; the spec does not
    with pytest.raises(ValueError, match=r"^max_length 16\.0: a whole number"):
        RunSpec.from_config(whole_float, "sft-a")
    fine = _study()
    fine["training"].update(max_prompt_length="auto", max_length=2)
    validate(fine, schema=schema)
    assert (RunSpec.from_config(fine, "sft-a").max_prompt_length, RunSpec.from_config(fine, "sft-a").max_length) == (
        "auto", 2)
