"""MATH-style problems: the final answer is the last `\\boxed{...}`; equivalence by `math-verify`.

The gold answer is the last `\\boxed{}` of the reference solution, or the answer column as it is when
it has none (MATH-500 ships bare answers). A completion without a `\\boxed{}` has no answer (the
paper's verifiable reward gives it 0). `math-verify` (Hugging Face's verifier, used by open-r1 and the
TRL examples) decides whether `\\frac{1}{2}`, `0.5` and `\\dfrac12` are the same answer.
A clipped completion (stopped by the token limit) cut inside its last `\\boxed{` has no answer (its
braces never close); one cut while writing a new `\\boxed{` has none either; a closed `\\boxed{}` followed
by more text is kept.
"""

from __future__ import annotations

import threading

from .base import Task, ends_in_marker

_BOXED = ("\\boxed{", "\\fbox{")


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (balanced braces), or None."""
    start = max(text.rfind(marker) for marker in _BOXED)
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth, begin = 1, i
    while i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[begin:i].strip()
        i += 1
    return None


def _timeout() -> int | None:
    # math-verify times out with SIGALRM, which only the main thread may set.
    return 5 if threading.current_thread() is threading.main_thread() else None


def equivalent(gold: str, predicted: str) -> bool:
    from math_verify import parse, verify

    timeout = _timeout()
    parsed_gold = parse(f"${gold}$", parsing_timeout=timeout)
    parsed_pred = parse(f"${predicted}$", parsing_timeout=timeout)
    if not parsed_gold or not parsed_pred:
        return gold.strip() == predicted.strip()
    return bool(verify(parsed_gold, parsed_pred, timeout_seconds=timeout))


class CompetitionMath(Task):
    name = "math"

    def gold(self, answer: str) -> str:
        return last_boxed(answer) or answer.strip()

    def extract(self, completion: str) -> str | None:
        return last_boxed(completion)

    def cut_short(self, completion: str) -> bool:
        return ends_in_marker(completion, _BOXED)  # a cut inside an open \boxed{ already reads as None

    def same(self, gold: str, extracted: str) -> bool:
        return equivalent(gold, extracted)


MATH_TASK = CompetitionMath()
