"""The task registry: gold answers, answer extraction, equivalence and the reward functions TRL calls."""

import pytest

from subnet_rl.tasks import TASKS, get_task, reward_function
from subnet_rl.tasks.competition_math import last_boxed

GSM8K = get_task("gsm8k")
MATH = get_task("math")
ADDITION = get_task("addition")
PREFERENCE = get_task("preference")


# --- gsm8k ---------------------------------------------------------------------------------------------

def test_gsm8k_gold_is_the_number_after_the_marks():
    solution = "She sells 16 * 67 = <<16*67=1072>>1072 eggs.\n#### 1,072"
    assert GSM8K.gold(solution) == "1072"
    assert GSM8K.gold("72") == "72"  # a bare number (already-extracted answers) is taken as is


@pytest.mark.parametrize("completion,expected", [
    ("3 boxes of 24 is 72, minus 8 leaves 64.\n#### 72 (after 9 * 8)", "72"),  # after '####', not the last number
    ("#### 5\nWait, I was wrong.\n#### 7", "7"),                                 # the last '####' wins
    ("He had 12 apples and ate 5, so 7 remain.", "7"),                            # no '####': the last number
    ("#### none", None),
    ("I do not know.", None),
])
def test_gsm8k_extract(completion, expected):
    assert GSM8K.extract(completion) == expected


@pytest.mark.parametrize("written", ["1,000", "1000.0", "$1000", "1000", "1000."])
def test_gsm8k_compares_numbers_not_strings(written):
    assert GSM8K.is_correct(f"So the total is\n#### {written}", "Adding up.\n#### 1000")
    assert GSM8K.reward(f"The answer is {written}", "#### 1,000", "binary") == 1.0


def test_gsm8k_wrong_answer_scores_zero():
    assert GSM8K.reward("#### 1001", "#### 1000", "binary") == 0.0
    assert GSM8K.reward("no number at all", "#### 1000", "binary") == 0.0


@pytest.mark.parametrize("answer", ["Natalia sold some clips.", "#### seventy-two"])
def test_gsm8k_gold_without_a_number_names_the_problem(answer):
    with pytest.raises(ValueError, match="####") as err:
        GSM8K.gold(answer)
    assert answer in str(err.value)


# --- math ----------------------------------------------------------------------------------------------

def test_math_takes_the_last_boxed_with_nested_braces():
    text = r"First \boxed{1}, but in fact $\boxed{\frac{1}{2}}$."
    assert last_boxed(text) == r"\frac{1}{2}"
    assert MATH.extract(text) == r"\frac{1}{2}"
    assert MATH.gold(r"so the probability is $\boxed{\frac{1}{\sqrt{4}}}$") == r"\frac{1}{\sqrt{4}}"


def test_math_equivalence_by_math_verify():
    gold = r"Half of them: $\boxed{\frac{1}{2}}$."
    assert MATH.reward(r"That is \boxed{0.5}.", gold, "binary") == 1.0
    assert MATH.reward(r"\boxed{\dfrac12}", gold, "binary") == 1.0
    assert MATH.reward(r"That is \boxed{3}.", gold, "binary") == 0.0


def test_math_completion_without_boxed_scores_zero():
    assert MATH.extract("The answer is 1/2.") is None
    assert MATH.reward("The answer is 1/2.", r"\boxed{\frac{1}{2}}", "binary") == 0.0


def test_math_gold_without_boxed_is_the_answer_itself():
    # MATH-500 ships bare answers.
    assert MATH.gold(r" \frac{1}{2} ") == r"\frac{1}{2}"
    assert MATH.reward(r"\boxed{0.5}", r"\frac{1}{2}", "binary") == 1.0
    assert MATH.reward(r"\boxed{0.25}", r"\frac{1}{2}", "binary") == 0.0


# --- addition and preference ---------------------------------------------------------------------------

def test_addition_partial_and_binary_rewards():
    assert ADDITION.rewards[0] == "partial"
    assert ADDITION.reward("501", "501", "partial") == 1.0
    assert ADDITION.reward("500", "501", "partial") == pytest.approx(0.8 * 2 / 3 + 0.1)
    assert ADDITION.reward("5x1", "501", "partial") == 0.0
    assert ADDITION.reward(" 501 ", "501", "binary") == 1.0
    assert ADDITION.reward("500", "501", "binary") == 0.0


def test_preference_scores_nothing():
    assert PREFERENCE.scores is False
    with pytest.raises(ValueError, match="scores nothing"):
        PREFERENCE.reward("a", "b", "binary")
    with pytest.raises(ValueError, match="no 'binary' reward"):
        reward_function(PREFERENCE, "binary")


# --- reward functions as TRL calls them ---------------------------------------------------------------

def _call_like_trl(fn, prompts, completions, answers):
    # GRPOTrainer: reward_func(prompts=..., completions=..., completion_ids=..., **dataset columns, trainer_state=...)
    return fn(prompts=prompts, completions=completions, completion_ids=[[1, 2]] * len(completions),
              answer=answers, question=["q"] * len(completions), trainer_state=None)


def test_reward_function_on_plain_completions():
    fn = reward_function(GSM8K, "binary")
    rewards = _call_like_trl(fn, ["Q?", "Q?", "Q?"], ["Work.\n#### 72", "#### 71", "It is 72"],
                             ["#### 72"] * 3)
    assert rewards == [1.0, 0.0, 1.0] and all(type(r) is float for r in rewards)
    assert fn.__name__ == "gsm8k_binary"


def test_reward_function_on_conversational_completions():
    prompt = [{"role": "user", "content": "How many?"}]
    completions = [[{"role": "assistant", "content": "9 * 8 = 72\n#### 72"}],
                   [{"role": "assistant", "content": "9 * 8 = 81\n#### 81"}]]
    assert _call_like_trl(reward_function(GSM8K, "binary"), [prompt] * 2, completions, ["#### 72"] * 2) == [1.0, 0.0]

    completions = [[{"role": "assistant", "content": r"It is $\boxed{\frac{1}{2}}$"}],
                   [{"role": "assistant", "content": r"It is $\boxed{2}$"}],
                   [{"role": "assistant", "content": "It is 0.5"}]]
    fn = reward_function(MATH, "binary")
    assert _call_like_trl(fn, [prompt] * 3, completions, ["0.5"] * 3) == [1.0, 0.0, 0.0]
    assert fn.__name__ == "math_binary"


def test_reward_function_addition_partial():
    fn = reward_function(ADDITION, "partial")
    assert fn.__name__ == "addition_partial"
    rewards = _call_like_trl(fn, ["37+68="] * 2, ["501", "500"], ["501"] * 2)
    assert rewards == [1.0, pytest.approx(0.8 * 2 / 3 + 0.1)]


def test_reward_function_refuses_a_kind_the_task_lacks():
    with pytest.raises(ValueError, match=r"'gsm8k' has no 'partial' reward.*\['binary'\]"):
        reward_function(GSM8K, "partial")


def test_get_task_unknown_name_lists_the_known_tasks():
    assert set(TASKS) == {"addition", "gsm8k", "math", "preference"}
    assert get_task("gsm8k") is GSM8K
    with pytest.raises(ValueError, match="unknown task 'mmlu'") as err:
        get_task("mmlu")
    assert all(name in str(err.value) for name in TASKS)


def test_the_config_schema_offers_exactly_the_registered_tasks_and_rewards():
    """A task added to the registry is usable from the config (and the schema names no missing task)."""
    from pathlib import Path

    import yaml

    from subnet_rl.tasks import TASKS

    schema = yaml.safe_load((Path(__file__).parents[1] / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert sorted(schema["$defs"]["task"]["enum"]) == sorted(TASKS)
    assert set(schema["$defs"]["reward"]["enum"]) == {r for task in TASKS.values() for r in task.rewards}


# --- clipped completions (generation stopped by max_new_tokens, not by EOS) ----------------------------

@pytest.mark.parametrize("completion,expected", [
    ("8 + 2 = 10\n#### 1", None),            # the cut: "1" may be the start of "10"
    ("#### 1,0", None), ("#### 1,", None), ("#### 3.", None),  # a number that could go on
    ("#### 10\n##", None),                    # cut while writing a new '####': another answer was coming
    ("So she has 10 apples and", None),       # no '####': the last number of an unfinished text is unknown
    ("#### 10\nThat is", "10"),               # a complete answer followed by more text is an answer
    ("#### 3.\n", "3"), ("#### 1,000 eggs", "1000"),
])
def test_gsm8k_clipped_answer_that_runs_into_the_cut_is_none(completion, expected):
    assert GSM8K.answer(completion, clipped=True) == expected
    assert GSM8K.answer(completion) == GSM8K.extract(completion)  # not clipped: read as always


def test_a_clipped_gsm8k_answer_cut_short_is_scored_wrong():
    assert GSM8K.is_correct("8 + 2 = 10\n#### 1", "#### 1") is True
    assert GSM8K.is_correct("8 + 2 = 10\n#### 1", "#### 1", clipped=True) is False
    assert GSM8K.reward("8 + 2 = 10\n#### 1", "#### 1", "binary", clipped=True) == 0.0
    assert GSM8K.is_correct("#### 10\nDone", "#### 10", clipped=True) is True


@pytest.mark.parametrize("completion,expected", [
    (r"so \boxed{\frac{1}{2", None),           # cut inside the box: braces never close
    (r"\boxed{1} or rather \box", None),        # cut while writing a new \boxed{
    ("\\boxed{1} or rather \\", None),
    (r"\boxed{12}", "12"),                      # closed at the cut: the braces delimit a whole answer
    (r"\boxed{12} and so", "12"),
])
def test_math_clipped_answer_is_the_closed_box_only(completion, expected):
    assert MATH.answer(completion, clipped=True) == expected


def test_math_unclipped_completion_reads_its_last_closed_box():
    assert MATH.answer(r"\boxed{1} or rather \box") == "1"


def test_a_clipped_addition_completion_has_no_answer():
    """The answer is the whole completion, ended by EOS: cut at the limit, "501" may have been "5010"."""
    assert ADDITION.is_correct("501", "501") and ADDITION.answer("501") == "501"
    assert ADDITION.answer("501", clipped=True) is None
    assert not ADDITION.is_correct("501", "501", clipped=True)
    assert ADDITION.reward("501", "501", "partial", clipped=True) == 0.0
    assert ADDITION.reward("500", "501", "partial") == pytest.approx(0.8 * 2 / 3 + 0.1)  # unclipped: unchanged
