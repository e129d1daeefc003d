"""Algorithms in a fixed order, and their colours: an algorithm's colour and place do not depend on which
algorithms a configuration ran, because both come from its place in the algorithm registry
(`subnet_rl.algorithms.ALGORITHMS`; SFT, the control, is 7th there: black)."""

from __future__ import annotations

from collections.abc import Iterable

from ..algorithms import ALGORITHMS
from .palette import OKABE_ITO


def algorithm_order(algorithms: Iterable[str] = ()) -> list[str]:
    """The registry's algorithms in registry order, then any others named (not in the registry) sorted."""
    known = list(ALGORITHMS)
    return known + sorted(set(algorithms) - set(known))


def algorithm_colours(algorithms: Iterable[str] = ()) -> dict[str, str]:
    """A colour per algorithm, by its place in `algorithm_order`."""
    return {a: OKABE_ITO[i % len(OKABE_ITO)] for i, a in enumerate(algorithm_order(algorithms))}
