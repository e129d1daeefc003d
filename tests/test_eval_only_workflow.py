"""A config without runs (.test/eval-only.yaml) through the Snakefile: its DAG holds the start models'
evaluations and their table, nothing that trains a run or presents a comparison; run end to end on
the embedded model (~45 s on 2 cores), its table holds what the evaluation Parquets say."""

import math
import re

import pandas as pd
import pytest
import yaml

from test_workflow import REPO, finished_run, planned_outputs, snakemake

pytestmark = pytest.mark.e2e

EVAL_ONLY = REPO / ".test" / "eval-only.yaml"
TABLE = "results/tables/start_models"
#: what scoring a start model takes: its data, the embedded model built and warmed up, the evaluations,
#: the check of the table's inputs and the table
START_MODEL_RULES = {"dataset", "build_model", "warmup", "evaluate", "check_inputs", "start_models_table", "all"}


def planned_rules(dry_run_stdout: str) -> set[str]:
    return set(re.findall(r"^(?:local)?rule (\w+):", dry_run_stdout, flags=re.M))


def test_dag_holds_the_evaluations_and_the_table_only(tmp_path):
    result = snakemake(tmp_path, "-n", configfile=EVAL_ONLY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert planned_rules(result.stdout) == START_MODEL_RULES
    planned = planned_outputs(result.stdout)
    assert {p for p in planned if p.startswith("results/eval/")} == {
        "results/eval/addition/base/start.parquet", "results/eval/addition3/base/start.parquet"}
    assert {f"{TABLE}.{ext}" for ext in ("md", "csv", "tex")} <= planned
    assert not [p for p in planned if p.startswith(("results/figures/", "results/findings", "results/diff/"))]

    config = yaml.safe_load(EVAL_ONLY.read_text())
    config["evaluate"]["datasets"] = ["addition3"]
    chosen = tmp_path / "chosen.yaml"
    chosen.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", configfile=chosen)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {p for p in planned_outputs(result.stdout) if p.startswith("results/eval/")} == {
        "results/eval/addition3/base/start.parquet"}


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    return finished_run(tmp_path_factory, "eval-only", EVAL_ONLY)


def test_start_models_table_holds_the_evaluations(scored):
    table = pd.read_csv(scored / f"{TABLE}.csv", keep_default_na=False)
    assert list(table["dataset"]) == ["addition", "addition3"] and set(table["model"]) == {"start"}
    for row in table.to_dict("records"):
        evaluation = pd.read_parquet(scored / "results" / "eval" / row["dataset"] / "base" / "start.parquet")
        p = evaluation["correct"].mean()
        assert row["n"] == len(evaluation) == {"addition": 24, "addition3": 16}[row["dataset"]]
        assert row["accuracy (%)"] == pytest.approx(100 * p)
        assert row["accuracy SE (points)"] == pytest.approx(100 * math.sqrt(p * (1 - p) / len(evaluation)))
        assert row["clipped (%)"] == pytest.approx(100 * evaluation["clipped"].mean())
    assert (scored / f"{TABLE}.md").read_text().startswith("# Start models")
    assert "\\toprule" in (scored / f"{TABLE}.tex").read_text()
    results = {p.name for p in (scored / "results").iterdir()}
    assert not results & {"figures", "findings.csv", "diff", "masks"}
    assert not (scored / "results" / "checkpoints" / "full").exists()


def test_nothing_to_do_after_scoring(scored):
    result = snakemake(scored, "-n", configfile=EVAL_ONLY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr
