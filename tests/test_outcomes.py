"""What each arm of a comparison learned: judged beyond the noise, written by the tables stage, carried into
every comparison table, and named by the verdicts that rest on an arm that did not learn the task."""

import math

import pandas as pd
import pytest

from subnet_rl.comparisons import controls_table, data_table
from subnet_rl.evaluate import Completion, scored_table
from subnet_rl.findings import compute_findings
from subnet_rl.outcomes import LEARNED, LOST, OTHER_TARGET, UNCHANGED, UNKNOWN, outcome
from subnet_rl.tables import sparsity_table
from subnet_rl.tasks import get_task
from test_findings import CRITERION, EXAMPLES, RUNS, WARMUP, _diff, _specs

SE = 1.0  # points


@pytest.mark.parametrize("before,after,target,expected", [
    (40.0, 50.0, None, LEARNED),                # +10 points, 2 combined SE = 2.83: beyond the noise
    (40.0, 42.0, None, UNCHANGED),              # +2 points: within it
    (40.0, 0.0, None, LOST),
    (40.0, 0.0, (0.0, 85.0), OTHER_TARGET),     # the task lost, the pairs' form learned
    (40.0, 0.0, (0.0, 1.0), LOST),              # the form barely moved: within noise, so lost
    (40.0, 50.0, (0.0, 85.0), LEARNED),         # the task's own gain comes first
    (40.0, math.nan, None, UNKNOWN),
])
def test_outcome_is_judged_beyond_the_noise(before, after, target, expected):
    targets = (target[0], SE, target[1], SE) if target else ()
    assert outcome(before, SE, after, SE, *targets) == expected


def test_outcome_without_errors_is_not_measured():
    assert outcome(40.0, math.nan, 90.0, math.nan) == UNKNOWN


def test_evaluation_scores_the_off_policy_answer_form_apart():
    """Addition's off-policy pairs teach "501" as "50100": a completion in that form is wrong for the task and
    right for the form, and a clipped one is right for neither."""
    test = pd.DataFrame({"prompt": ["37+68="] * 3, "answer": ["501"] * 3})
    completions = [Completion("501", False), Completion("50100", False), Completion("5010", True)]
    scored = scored_table(test, completions, get_task("addition"), "binary")
    assert list(scored["correct"]) == [True, False, False]
    assert list(scored["correct_off_policy_form"]) == [False, True, False]


def _collapsed_off_policy_tables(target_after: float | None) -> dict[str, pd.DataFrame]:
    """The findings fixture's runs, with the off-policy DPO arm at 0% on the task; with `target_after`, its
    evaluations scored on the pairs' form too (0% at the start)."""
    specs = _specs()
    accuracy = {("addition", "base", "init"): 0.0, ("addition", "base", "start"): 0.4,
                **{("addition", "full", name): 0.5 for name in RUNS}, ("addition", "full", "dpo-learn-off"): 0.0}
    target = None if target_after is None else {**dict.fromkeys(accuracy, 0.0),
                                                ("addition", "full", "dpo-learn-off"): target_after}
    diffs = {name: _diff({"tol=1e-05": row[4], "bf16_bitwise": 0.0, "exact": 0.0}) for name, row in RUNS.items()}
    sparsity = sparsity_table(specs, diffs, accuracy, {}, WARMUP, _diff({"tol=1e-05": 0.4, "bf16_bitwise": 0.0,
                                                                            "exact": 0.0}),
                              examples=dict.fromkeys(accuracy, EXAMPLES), target=target)
    return {"sparsity": sparsity, "data": data_table(specs, sparsity, CRITERION, {}),
            "controls": controls_table(specs, sparsity, CRITERION)}


def test_the_tables_carry_each_arms_outcome_and_the_off_policy_form():
    tables = _collapsed_off_policy_tables(target_after=0.85)
    sparsity = tables["sparsity"].set_index("run")
    assert sparsity.loc["dpo-learn-off", "outcome"] == OTHER_TARGET
    assert sparsity.loc["dpo-learn-off", "target_accuracy_after"] == pytest.approx(85.0)
    assert sparsity.loc["dpo-learn-s1", "outcome"] == LEARNED
    assert math.isnan(sparsity.loc["dpo-learn-s1", "target_accuracy_after"])  # on-policy: no other form
    data = tables["data"].set_index("run")
    assert data.loc["dpo-learn-off", ["outcome", "target_accuracy_after"]].tolist() == [OTHER_TARGET, 85.0]
    controls = tables["controls"]
    assert {"outcome", "control_outcome", "accuracy_before", "control_accuracy_after"} <= set(controls.columns)
    assert set(controls["control_outcome"]) == {LEARNED}
    assert controls.set_index("run")["outcome"].to_dict() == {**dict.fromkeys(controls["run"], LEARNED),
                                                              "dpo-learn-off": OTHER_TARGET}


@pytest.mark.parametrize("target_after,named", [(0.85, "dpo-learn-off learned another target (40.0% -> 0.0%)"),
                                                (None, "dpo-learn-off lost accuracy (40.0% -> 0.0%)")])
def test_a_verdict_resting_on_an_arm_that_did_not_learn_the_task_says_so(target_after, named):
    findings = compute_findings(_collapsed_off_policy_tables(target_after), CRITERION).set_index("claim")
    evidence = findings.loc["in-distribution", "evidence"]
    assert evidence.startswith("caution: 1/1 comparisons rest on an arm that did not learn the task")
    assert named in evidence
    # The off-policy arm is an RL run with an SFT control too: 1 of the 5 matched pairs rests on it.
    assert findings.loc["matched-control", "evidence"].startswith(f"caution: 1/5 comparisons rest on an arm that "
                                                                  f"did not learn the task ({named})")


def test_no_caution_when_every_arm_learned():
    tables = _collapsed_off_policy_tables(None)
    tables["sparsity"].loc[tables["sparsity"]["run"] == "dpo-learn-off", "outcome"] = LEARNED
    tables["data"] = data_table(_specs(), tables["sparsity"], CRITERION, {})
    assert "caution" not in compute_findings(tables, CRITERION).set_index("claim").loc["in-distribution", "evidence"]


def test_an_arm_that_learned_nothing_visible_is_named_too():
    """A pair of runs that both changed nothing beyond the noise (bf16 weights, SGD at a small lr) compares
    sparsities that say nothing about learning: the caution names both arms."""
    tables = _collapsed_off_policy_tables(None)
    sparsity = tables["sparsity"]
    for run in ("grpo-learn-fp32", "sft-learn-fp32"):
        sparsity.loc[sparsity["run"] == run, ["accuracy_after", "outcome"]] = [40.0, UNCHANGED]
    tables["controls"] = controls_table(_specs(), sparsity, CRITERION)
    evidence = compute_findings(tables, CRITERION).set_index("claim").loc["matched-control", "evidence"]
    assert evidence.startswith("caution: 2/5 comparisons rest on an arm that did not learn the task")
    assert "grpo-learn-fp32 no change beyond noise (40.0% -> 40.0%)" in evidence
    assert "sft-learn-fp32 no change beyond noise (40.0% -> 40.0%)" in evidence
