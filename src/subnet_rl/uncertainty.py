"""How uncertain an accuracy is, and when a difference of two accuracies is noise: defined once, here.

A greedy accuracy on n test examples is a binomial proportion: its standard error is sqrt(p(1-p)/n)
(3.5 points at 50% on 200 examples), so a few points' difference between two checkpoints can be the test
set's sampling and nothing else. The tables show each accuracy's standard error beside it; the findings
decide a comparison of accuracies only outside the noise (`judge`), never inside it.
"""

from __future__ import annotations

import math
from typing import Literal

#: a difference is decided only when it lies this many combined standard errors from its threshold (about
#: a 95% interval for a normal approximation of the binomial).
NOISE_Z = 2.0

Outcome = Literal["above", "below", "within noise"]


def binomial_standard_error(accuracy: float, n: int) -> float:
    """The standard error of an accuracy (a share, 0-1) measured on n independent examples, sqrt(p(1-p)/n);
    NaN when nothing was measured (n = 0) or the accuracy is unknown."""
    if not n or math.isnan(accuracy):
        return math.nan
    return math.sqrt(accuracy * (1.0 - accuracy) / n)


def combined_standard_error(*errors: float) -> float:
    """The standard error of a difference of independent measurements, sqrt(se1² + se2² + ...); NaN when one
    is unknown."""
    return math.sqrt(sum(e * e for e in errors))


def judge(difference: float, threshold: float, error: float, z: float = NOISE_Z) -> Outcome:
    """Whether `difference` is above or below `threshold` beyond the noise, or within it: "within noise" when
    |difference - threshold| < z * error, the ~95% interval of the difference then straddling the threshold.
    An unknown error (NaN) decides nothing: within noise."""
    if math.isnan(error) or abs(difference - threshold) < z * error:
        return "within noise"
    return "above" if difference > threshold else "below"
