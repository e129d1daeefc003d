"""Arithmetic problems in GSM8K's format, generated offline: the real-model study's task.

A small pretrained chat model (SmolLM2-135M-Instruct) can partly do one-step arithmetic on a two-digit and a
one-digit number, so RL has a signal to learn from and a test split has room to improve, unlike GSM8K itself
(out of reach at that size) or reversed-digit addition (a form no pretrained model writes). Each problem is a
question whose instruction sits in the question text (this model follows an instruction there and ignores a
system prompt) and a worked answer ending in `#### <number>`, scored by the gsm8k task as GSM8K is.
"""

from __future__ import annotations

import random
from itertools import product

OPERATIONS = ("+", "-")
INSTRUCTION = "End your answer with '#### ' followed by the number."


def _value(a: int, operation: str, b: int) -> int:
    return a + b if operation == "+" else a - b


def all_problems(digits: int, second_digits: int, operations: tuple[str, ...]) -> list[tuple[int, str, int]]:
    """Every (a, operation, b) with a of at most `digits` digits and b of at most `second_digits`; a
    subtraction only where a >= b, so no answer is negative."""
    unknown = sorted(set(operations) - set(OPERATIONS))
    if unknown or not operations:
        raise ValueError(f"operations {list(operations)}: use one or more of {list(OPERATIONS)}")
    return [(a, op, b) for op, a, b in product(dict.fromkeys(operations), range(10 ** digits), range(10 ** second_digits))
            if op == "+" or a >= b]


def problem_count(digits: int, second_digits: int, operations: tuple[str, ...]) -> int:
    """How many distinct problems `all_problems` holds, counted without listing them (the config check)."""
    first, second = 10 ** digits, 10 ** second_digits
    total = first * second if "+" in operations else 0
    if "-" in operations:  # pairs with a >= b
        total += sum(max(0, first - b) for b in range(min(first, second)))
    return total


def problem_row(a: int, operation: str, b: int) -> dict[str, str]:
    """The question (with its instruction) and the worked answer ending in `#### <number>`."""
    value = _value(a, operation, b)
    return {"prompt": f"What is {a} {operation} {b}? {INSTRUCTION}", "answer": f"{a} {operation} {b} = {value}\n#### {value}"}


def arithmetic_splits(digits: int, second_digits: int, operations: tuple[str, ...], n_train: int, n_test: int,
                      seed: int) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Disjoint train and test problems, drawn without replacement with `seed`."""
    problems = all_problems(digits, second_digits, operations)
    if n_train + n_test > len(problems):
        raise ValueError(f"{digits}- and {second_digits}-digit {'/'.join(operations)} problems number only "
                         f"{len(problems)}; n_train + n_test = {n_train + n_test}. Lower n_train/n_test or raise digits")
    random.Random(seed).shuffle(problems)
    rows = [problem_row(*p) for p in problems[: n_train + n_test]]
    return rows[:n_train], rows[n_train:]
