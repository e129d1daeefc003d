"""GSM8K: grade-school word problems whose reference solution ends in `#### <number>`.

The gold answer is the number after the last `####`. A completion's answer is the number after its
last `####` when it writes one, else its last number (what a chat model that was never taught the
`####` convention writes last); both are compared as numbers, so "1,000", "1000.0" and "$1000" agree.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from .base import Task

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
        if _MARK in completion:
            numbers = _NUMBER.findall(completion.rsplit(_MARK, 1)[-1])
            return _normalise(numbers[0]) if numbers else None
        return _last_number(completion)

    def is_correct(self, completion: str, answer: str) -> bool:
        extracted = self.extract(completion)
        return extracted is not None and Decimal(extracted) == Decimal(self.gold(answer))


GSM8K_TASK = GSM8K()
