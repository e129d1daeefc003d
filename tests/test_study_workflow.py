"""End to end, the study's analyses on .test/study.yaml: every algorithm of the registry, training dynamics,
on- vs off-policy pairs, the KL and clipping ablations and the precision grid, in seconds per job."""

import pandas as pd
import pytest
import yaml

from subnet_rl.algorithms import ALGORITHMS
from test_workflow import REPO, snakemake

pytestmark = pytest.mark.e2e

STUDY_CONFIG = REPO / ".test" / "study.yaml"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    result = snakemake(workdir, configfile=STUDY_CONFIG)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return workdir


def table(workdir, name):
    assert (workdir / "results" / "tables" / f"{name}.md").is_file()
    return pd.read_csv(workdir / "results" / "tables" / f"{name}.csv")


def test_every_algorithm_trains_and_is_scored(study):
    config = yaml.safe_load(STUDY_CONFIG.read_text())
    assert {r["algorithm"] for r in config["runs"].values()} == set(ALGORITHMS)
    algorithms = table(study, "algorithms")
    assert set(algorithms["algorithm"]) == set(ALGORITHMS)
    sparsity = table(study, "sparsity").set_index("run")
    for run in config["runs"]:
        assert sparsity.loc[run, "sparsity exact"] < 100.0, f"{run} changed no entry"
    learning = sparsity[sparsity["regime"] == "learning"]
    gains = (learning["accuracy_after"] - learning["accuracy_before"]).groupby(learning["algorithm"]).mean()
    row = algorithms.set_index(["regime", "algorithm"]).loc[("learning", "grpo")]
    assert row["gain"] == pytest.approx(gains["grpo"])


def test_dynamics_follow_the_snapshots_and_the_split_sums_to_the_total(study):
    dynamics = table(study, "dynamics")
    assert list(dynamics["run"]) == ["grpo-a"] * 3 and list(dynamics["step"]) == [1, 2, 3]
    split = table(study, "dynamics_split").set_index("run")
    assert split.loc["grpo-a", ["never", "back", "final"]].sum() == pytest.approx(100.0)
    # The last point is the run's own checkpoint: its sparsity is the sparsity table's.
    criterion = "tol=1e-05"
    sparsity = table(study, "sparsity").set_index("run")
    assert dynamics["sparsity"].iloc[-1] == pytest.approx(sparsity.loc["grpo-a", f"sparsity {criterion}"])
    assert split.loc["grpo-a", "final"] == pytest.approx(100.0 - sparsity.loc["grpo-a", f"sparsity {criterion}"])


def test_off_policy_pairs_are_less_likely_under_the_start_model(study):
    data = table(study, "data").set_index("pairs")
    assert set(data["run"]) == {"dpo-on", "dpo-off"}
    for side in ("chosen_logp", "rejected_logp"):
        assert data.loc["off_policy", side] < data.loc["on_policy", side]
    # Each arm says what it learned; the off-policy arm is also scored on the answer form its pairs teach.
    assert set(data["outcome"]) <= {"learned", "learned another target", "lost accuracy", "no change beyond noise"}
    assert 0.0 <= data.loc["off_policy", "target_accuracy_after"] <= 100.0
    assert pd.isna(data.loc["on_policy", "target_accuracy_after"])
    frontier = table(study, "frontier")
    assert set(frontier["run"]) == set(table(study, "sparsity")["run"]) - {"sft-from-init"}


def test_matched_comparisons_are_found_in_the_config(study):
    ablations = table(study, "ablations")
    assert {(k, tuple(sorted(g["run"]))) for k, g in ablations.groupby("knob")} == {
        ("kl_beta", ("grpo-a", "grpo-kl")), ("max_grad_norm", ("grpo-a", "grpo-noclip"))}
    precision = table(study, "precision")
    assert set(zip(precision["algorithm"], precision["precision"])) == {
        ("grpo", "fp32"), ("grpo", "bf16"), ("sft", "fp32"), ("sft", "bf16")}


def test_step_sparsity_is_recorded_by_the_run_that_asks_and_agrees_with_the_snapshots(study):
    """grpo-a records its step sparsity (and keeps its matches: see the ablations above). Each step's bf16
    changes include the entries its dynamics find changed beyond tol=1e-05 since the previous snapshot, and
    every entry changed start to final (bf16_bitwise) changed in some step."""
    steps = table(study, "step_sparsity")
    assert list(steps["run"]) == ["grpo-a"] * 3 and list(steps["step"]) == [1, 2, 3]
    assert steps["% changed"].between(0, 100).all() and steps["% changed"].max() > 0
    assert (steps["% changed"] == 100 * steps["changed"] / steps["entries"]).all()
    dynamics = table(study, "dynamics").set_index("step")
    assert (steps.set_index("step")["% changed"] >= dynamics["changed_since_previous"] - 1e-9).all()
    sparsity = table(study, "sparsity").set_index("run")
    assert steps["% changed"].sum() >= 100.0 - sparsity.loc["grpo-a", "sparsity bf16_bitwise"] - 1e-9
    summary = table(study, "step_sparsity_summary")
    assert list(summary["run"]) == ["grpo-a"] and summary["steps"].iloc[0] == 3
    assert summary["mean % changed"].iloc[0] == pytest.approx(steps["% changed"].mean())
    assert (study / "results" / "figures" / "step_sparsity.png").stat().st_size > 10_000
    assert not list((study / "results" / "checkpoints" / "full").glob("grpo-kl/step_sparsity.parquet"))
