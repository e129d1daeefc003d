import pytest

from subnet_rl.tasks import addition as task


def test_reversed_answer_and_prompt():
    p = task.AdditionProblem(37, 68, 2)
    assert (p.prompt, p.answer) == ("37+68=", "501")
    assert task.AdditionProblem(3, 4, 2).prompt == "03+04="
    assert p.wrong_answer != p.answer and task.AdditionProblem(1, 1, 2).wrong_answer != "2"


@pytest.mark.parametrize("completion,expected", [
    ("501", 1.0), (" 501 ", 1.0), ("", 0.0), ("5x1", 0.0),
    ("500", 0.8 * 2 / 3 + 0.1), ("51", 0.8 * 1 / 3), ("105", 0.8 * 1 / 3 + 0.1),
])
def test_partial_credit_reward(completion, expected):
    assert task.partial_reward(completion, "501") == pytest.approx(expected)


def test_split_is_disjoint_and_deterministic():
    train, test = task.split_problems(2, 500, 100, seed=3)
    assert len(train) == 500 and len(test) == 100
    assert not {p.prompt for p in train} & {p.prompt for p in test}
    assert task.split_problems(2, 500, 100, seed=3) == (train, test)
    with pytest.raises(ValueError, match="only 100 distinct problems"):
        task.split_problems(1, 90, 20, seed=0)
