"""Colours and markers of runs, shared by every figure (no matplotlib: plain hex strings).

Runs keep one colour across every figure (`run_colours`, from the full sorted run list), from the
Okabe-Ito palette, which stays distinguishable with the common colour-vision deficiencies. Algorithms'
colours are in `algorithm_palette`, apart, so that only the figures coloured by algorithm carry the
algorithm registry in their code hash.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Okabe & Ito (2008), "Color Universal Design": orange, sky blue, bluish green, blue, vermillion, reddish purple,
#: black, and yellow last (it is the faintest on white, so it is used only from the 8th run on).
OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#000000", "#F0E442"]
#: Beyond 8 runs colours repeat; the marker then tells runs apart (cycle k of the palette -> MARKERS[k]).
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def run_colours(runs: Iterable[str]) -> dict[str, str]:
    """A colour per run, from the sorted, de-duplicated full run list: the same run gets the same colour in
    every figure as long as callers pass the same full list (not the runs of one table)."""
    return {run: OKABE_ITO[i % len(OKABE_ITO)] for i, run in enumerate(sorted(set(runs)))}


def run_colour(run: str, colours: dict[str, str]) -> str:
    """The colour of `run`; a run missing from `colours` is a caller that built them from a partial list."""
    if run not in colours:
        raise ValueError(f"run {run!r} has no colour: build colours with run_colours() from the full run list")
    return colours[run]


def run_marker(run: str, colours: dict[str, str]) -> str:
    """The marker of a run: which pass over the palette its colour came from (colours' keys are the full list)."""
    return MARKERS[(sorted(colours).index(run) // len(OKABE_ITO)) % len(MARKERS)]
