"""GSM8K: grade-school word problems whose reference solution ends in `#### <number>`.

The gold answer is the number after the last `####`. A completion's answer is the number after its
last `####` when it writes one, else its last number (what a chat model that was never taught the
`####` convention writes last); both are compared as numbers, so "1,000", "1000.0" and "$1000" agree.
A clipped completion (stopped by the token limit) has no answer when its number after `####` is
followed by nothing but what could continue it ("#### 1" of "#### 10", "#### 1," or "#### 3."), when
it ends while writing a new `####`, or when it has no `####`: the last number of a completion that never
ended is not known. A complete number after `####` followed by more text is kept.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from .base import Task, ends_in_marker

_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?|-?\$?\.\d+")
_MARK = "####"


def _normalise(number: str) -> str | None:
    cleaned = number.replace(",", "").replace("$", "").rstrip(".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _last_number(text: str) -> str | None:
    numbers = _NUMBER.findall(text)
    return _normalise(numbers[-1]) if numbers else None


class GSM8K(Task):
    name = "gsm8k"

    def gold(self, answer: str) -> str:
        tail = answer.rsplit(_MARK, 1)[-1]
        number = _last_number(tail) if _MARK in answer else _normalise(answer.strip())
        if number is None:
            raise ValueError(f"gsm8k answer {answer[-80:]!r} has no number after '####' (or is not a number)")
        return number

    def extract(self, completion: str) -> str | None:
        match = _answer_match(completion)
        return _normalise(match.group()) if match else None

    def cut_short(self, completion: str) -> bool:
        if _MARK not in completion:
            return True
        match = _answer_match(completion)
        runs_to_cut = match is not None and not completion[match.end():].lstrip(".,")
        return runs_to_cut or ends_in_marker(completion, (_MARK,))

    def same(self, gold: str, extracted: str) -> bool:
        return Decimal(extracted) == Decimal(gold)


def _answer_match(completion: str) -> re.Match[str] | None:
    """Where the answer is written: the first number after the last `####`, else the last number."""
    if _MARK in completion:
        return _NUMBER.search(completion, completion.rfind(_MARK) + len(_MARK))
    matches = list(_NUMBER.finditer(completion))
    return matches[-1] if matches else None


GSM8K_TASK = GSM8K()
