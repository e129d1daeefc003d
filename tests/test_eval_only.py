"""Start models scored without training runs: which (dataset, model) evaluations a config without `runs`
asks for, the start-model table built from the evaluation Parquets, and the schema accepting such a
config. The workflow side (the DAG and a run of .test/eval-only.yaml) is in test_eval_only_workflow.py."""

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from subnet_rl.start_models import (binomial_standard_error, start_checkpoints, start_evaluations,
                                    start_models_table)

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
EVAL_ONLY = REPO / ".test" / "eval-only.yaml"


def _eval_only(**evaluate):
    """.test/eval-only.yaml plus a preference dataset and a pretrained model under `models`."""
    config = yaml.safe_load(EVAL_ONLY.read_text())
    config["datasets"]["prefs"] = {"source": "hub", "path": "some/prefs", "task": "preference",
                                   "columns": {"chosen": "chosen", "rejected": "rejected"}}
    config["models"] = {"smol": {"source": "hub", "name": "org/smol", "revision": "abc123"}}
    config["evaluate"] = {**config.get("evaluate", {}), **evaluate}
    return config


def test_every_start_model_is_scored_on_every_scoring_dataset_by_default():
    pairs = start_evaluations(_eval_only())
    # the preference dataset scores nothing, so it is not evaluated
    assert pairs == [("addition", "start"), ("addition3", "start"), ("addition", "smol"), ("addition3", "smol")]


def test_evaluate_datasets_chooses_the_datasets():
    assert start_evaluations(_eval_only(datasets=["addition3"])) == [("addition3", "start"), ("addition3", "smol")]
    models_only = _eval_only(datasets=["addition"])
    del models_only["model"]
    assert start_evaluations(models_only) == [("addition", "smol")]


@pytest.mark.parametrize("datasets,message", [
    (["nosuch"], r"evaluate.datasets: 'nosuch' is not under 'datasets'"),
    (["prefs"], r"evaluate.datasets: dataset 'prefs' has task 'preference', which scores nothing"),
])
def test_evaluate_datasets_must_name_scoring_datasets(datasets, message):
    with pytest.raises(ValueError, match=message):
        start_evaluations(_eval_only(datasets=datasets))


def test_a_config_whose_datasets_all_fail_to_score_is_refused():
    config = _eval_only()
    config["datasets"] = {"prefs": config["datasets"]["prefs"]}
    with pytest.raises(ValueError, match="no dataset here has a scoring task"):
        start_evaluations(config)


def test_studies_and_pairs_configs_score_no_start_models_alone():
    study = yaml.safe_load((REPO / ".test" / "config.yaml").read_text())
    assert start_evaluations(study) == []
    assert start_evaluations(yaml.safe_load((REPO / "config" / "paper.yaml").read_text())) == []
    study["evaluate"]["datasets"] = ["addition"]  # silently ignored would mislead: refused
    with pytest.raises(ValueError, match="evaluate.datasets: only for a config without runs"):
        start_evaluations(study)


def test_start_checkpoints_say_what_each_model_is():
    assert start_checkpoints(_eval_only()) == {"start": "embedded, warmed up on addition", "smol": "org/smol@abc123"}


def test_schema_accepts_start_models_alone_and_refuses_datasets_without_a_model():
    config = _eval_only()
    validate(config, SCHEMA)
    assert config["evaluate"]["datasets"] is None  # the default: every scoring dataset
    no_model = _eval_only()
    del no_model["model"], no_model["models"]
    with pytest.raises(Exception, match="valid under any of the given schemas"):
        validate(no_model, SCHEMA)


def _scored(path: Path, correct: list[bool], clipped: list[bool]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"correct": correct, "clipped": clipped}).to_parquet(path)
    return str(path)


def test_start_models_table_reads_accuracy_error_and_clipped_share_from_the_evaluations(tmp_path):
    evals = [
        _scored(tmp_path / "eval/gsm/base/start.parquet", [True] * 3 + [False] * 7, [False] * 8 + [True] * 2),
        _scored(tmp_path / "eval/addition/base/start.parquet", [True, False, True, False], [False] * 4),
        _scored(tmp_path / "eval/addition/base/smol.parquet", [True] * 5, [True] + [False] * 4),
    ]
    table = start_models_table(evals, {"start": "embedded", "smol": "org/smol"}, max_clipped_share=0.1)
    assert list(table[["model", "dataset"]].itertuples(index=False, name=None)) == [
        ("smol", "addition"), ("start", "addition"), ("start", "gsm")]
    gsm = table.iloc[2]
    assert gsm["n"] == 10 and gsm["checkpoint"] == "embedded"
    assert gsm["accuracy (%)"] == pytest.approx(30.0)
    assert gsm["accuracy SE (points)"] == pytest.approx(100 * math.sqrt(0.3 * 0.7 / 10))
    assert gsm["clipped (%)"] == pytest.approx(20.0)
    assert "gsm 20.0%" in gsm["warning"] and "max_new_tokens" in gsm["warning"]
    assert table.iloc[1]["warning"] == "" and table.iloc[1]["accuracy SE (points)"] == pytest.approx(25.0)
    # every example right: no spread, and 20% clipped passes the 10% threshold
    assert table.iloc[0]["accuracy SE (points)"] == 0.0 and table.iloc[0]["warning"] != ""


def test_an_evaluation_without_the_clipped_column_names_its_rule(tmp_path):
    path = tmp_path / "results/eval/addition/base/start.parquet"
    path.parent.mkdir(parents=True)
    pd.DataFrame({"correct": [True]}).to_parquet(path)
    with pytest.raises(ValueError, match=r"lacks the columns \['clipped'\].*rule `evaluate`"):
        start_models_table([str(path)], {}, max_clipped_share=0.1)


def test_binomial_standard_error_is_nan_when_nothing_was_measured():
    assert binomial_standard_error(0.5, 200) == pytest.approx(0.0353553, rel=1e-5)
    assert math.isnan(binomial_standard_error(math.nan, 0))
