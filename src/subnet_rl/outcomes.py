"""What a run learned, judged from its accuracies beyond the noise: defined once, here.

A comparison of two runs' sparsity (an RL run and its SFT control, on- and off-policy data, fp32 and bf16)
says something about learning only when both arms learned the task. An arm whose accuracy fell (DPO on
off-policy pairs can learn to write the foreign answer form and score 0% on the task), or that learned the
other form it was shown instead of the task, changes its weights for another reason; a verdict resting on
it must say so. The tables stage writes each run's outcome beside its accuracies; the comparison tables and
the findings read it.

An off-policy arm's "target form" is the text its pairs teach (`Task.off_policy_answer`); the evaluation
stage scores every completion against it too (`correct_off_policy_form`), so "learned another target" is
measured, not assumed.
"""

from __future__ import annotations

import math

from .uncertainty import combined_standard_error, judge

LEARNED = "learned"
OTHER_TARGET = "learned another target"
LOST = "lost accuracy"
UNCHANGED = "no change beyond noise"
UNKNOWN = "not measured"
#: the sparsity table's columns of a run's accuracy (and standard error) on the answer form its off-policy pairs
#: teach, before and after training (NaN for runs on other data).
TARGET_COLUMNS = ("target_accuracy_before", "target_accuracy_before_se", "target_accuracy_after",
                  "target_accuracy_after_se")
#: outcomes that make an arm a poor witness in a comparison of sparsity between learning runs: it lost the task,
#: learned another target, or learned nothing the test set can see (bf16 weights or SGD at a small lr).
DOUBTFUL = frozenset({OTHER_TARGET, LOST, UNCHANGED})


def _gain(before: float, before_se: float, after: float, after_se: float) -> str:
    """"above", "below" or "within noise": the accuracy's change against zero, beyond the combined error."""
    return judge(after - before, 0.0, combined_standard_error(before_se, after_se))


def outcome(before: float, before_se: float, after: float, after_se: float,
            target_before: float = math.nan, target_before_se: float = math.nan,
            target_after: float = math.nan, target_after_se: float = math.nan) -> str:
    """A run's outcome from its task accuracy before and after training (points, each with its binomial
    standard error) and, for a run trained toward another answer form, its accuracy on that form:

    - "learned": the task accuracy rose beyond the noise;
    - "learned another target": it did not, while the target form's accuracy rose beyond the noise;
    - "lost accuracy": the task accuracy fell beyond the noise (and no other target was learned);
    - "no change beyond noise": neither;
    - "not measured": an accuracy or error is missing.
    """
    if any(math.isnan(x) for x in (before, before_se, after, after_se)):
        return UNKNOWN
    task = _gain(before, before_se, after, after_se)
    if task == "above":
        return LEARNED
    targets = (target_before, target_before_se, target_after, target_after_se)
    if not any(math.isnan(x) for x in targets) and _gain(*targets) == "above":
        return OTHER_TARGET
    return LOST if task == "below" else UNCHANGED


def described(run: str, outcome_: str, before: float, after: float) -> str:
    """How evidence names an arm whose outcome weakens a comparison: "orpo-offpolicy lost accuracy
    (40.2% -> 0.0%)"."""
    return f"{run} {outcome_} ({before:.1f}% -> {after:.1f}%)"
