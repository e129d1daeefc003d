"""The embedded verifiable task: addition with the answer written least-significant digit first.

Reversed digits let the carry flow in generation order, so a tiny model can learn the task and RL has
something left to improve from a partially trained start.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .base import Task

ALPHABET = "0123456789+="


@dataclass(frozen=True)
class AdditionProblem:
    a: int
    b: int
    digits: int

    @property
    def prompt(self) -> str:
        return f"{self.a:0{self.digits}d}+{self.b:0{self.digits}d}="

    @property
    def answer(self) -> str:
        return str(self.a + self.b)[::-1]

    @property
    def wrong_answer(self) -> str:
        """A plausible mistake (the sum in the usual digit order, or the last digit off by one)."""
        forward = str(self.a + self.b)
        if forward != self.answer:
            return forward
        return self.answer[:-1] + str((int(self.answer[-1]) + 1) % 10)


def all_problems(digits: int) -> list[AdditionProblem]:
    top = 10**digits
    return [AdditionProblem(a, b, digits) for a in range(top) for b in range(top)]


def split_problems(digits: int, n_train: int, n_test: int, seed: int) -> tuple[list, list]:
    """Disjoint train/test problems drawn without replacement."""
    problems = all_problems(digits)
    if n_train + n_test > len(problems):
        raise ValueError(
            f"{digits}-digit addition has only {len(problems)} distinct problems; "
            f"n_train + n_test = {n_train + n_test}. Lower n_train/n_test or raise digits."
        )
    random.Random(seed).shuffle(problems)
    return problems[:n_train], problems[n_train : n_train + n_test]


def partial_reward(completion: str, answer: str) -> float:
    """Partial credit, so RL gets a signal from a half-competent start.

    1.0 for an exact answer; otherwise 0.8 x (fraction of digit positions right) + 0.1 when the length is
    right; 0 for an empty or non-numeric completion.
    """
    completion = completion.strip()
    if completion == answer:
        return 1.0
    if not completion.isdigit():
        return 0.0
    right = sum(c == a for c, a in zip(completion, answer))
    return 0.8 * right / len(answer) + (0.1 if len(completion) == len(answer) else 0.0)


class Addition(Task):
    """Exact match of the digits; partial credit (the miniature's default reward) per digit position.

    The answer is the whole completion, ended by EOS: a clipped one has none (Task.cut_short), as the
    model may have been about to write another digit ("50" of "501")."""

    name = "addition"
    rewards = ("partial", "binary")

    def partial_reward(self, completion: str, answer: str) -> float:
        return partial_reward(completion, answer)

    def off_policy_answer(self, answer: str) -> str:
        """The same number in a form the policy never writes: two trailing zeros ("501" -> "50100", still
        105 read least-significant digit first). Its references are what the policy writes when right."""
        return answer + "00"


ADDITION = Addition()
