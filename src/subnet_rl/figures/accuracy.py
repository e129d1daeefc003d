"""Greedy accuracy per run: start, full finetuning, subnetwork retraining and its random-mask control, each
with its binomial standard error as an error bar (a few points on a few hundred examples: bars closer than
that are not different)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .canvas import Tables, has_columns, numeric_columns
from .palette import run_colour, run_colours

#: bar -> the subnetwork table's column it shows.
SUBNETWORK_BARS = {"start": "accuracy_start", "full": "accuracy_full", "subnetwork": "accuracy_subnetwork",
                   "random mask, same density": "accuracy_random_same"}
#: bar -> its fill: the run colour says which run, the fill which model.
BAR_STYLES = {"start": {"alpha": 0.35}, "full": {}, "subnetwork": {"hatch": "//", "alpha": 0.8},
              "random mask, same density": {"hatch": "..", "alpha": 0.5}}


def accuracy_by_run(subnetwork: pd.DataFrame | None, sparsity: pd.DataFrame | None,
                    suffix: str = "") -> dict[str, dict[str, float]]:
    """run -> bar -> accuracy (%): start and full from the sparsity table, replaced by the subnetwork table's
    bars for the runs it holds (it scores the subnetwork and its random-mask control too). With `suffix`
    "_se", the same bars' standard errors (points), read from the tables' `<column>_se` columns."""
    bars: dict[str, dict[str, float]] = {}
    before_after = [f"accuracy_before{suffix}", f"accuracy_after{suffix}"]
    if has_columns(sparsity, ["run", *before_after]):
        for row in numeric_columns(sparsity, before_after).to_dict("records"):
            bars[str(row["run"])] = {"start": row[before_after[0]], "full": row[before_after[1]]}
    if has_columns(subnetwork, ["run", *(f"{c}{suffix}" for c in ("accuracy_start", "accuracy_full",
                                                                   "accuracy_subnetwork"))]):
        for row in subnetwork.to_dict("records"):
            values = {k: pd.to_numeric(row.get(c + suffix), errors="coerce") for k, c in SUBNETWORK_BARS.items()}
            bars[str(row["run"])] = {k: float(v) for k, v in values.items() if pd.notna(v)}
    return {run: values for run, values in bars.items() if values}


def accuracy_bars(tables: Tables, runs: Sequence[str]) -> Figure | None:
    """Greedy accuracy per run: start, full finetuning, subnetwork retraining (and the same-density random
    mask when scored), each with a ±1 binomial standard error bar where the tables give one. Runs without a
    subnetwork retraining show start and full from the sparsity table."""
    bars, colours = accuracy_by_run(tables.get("subnetwork"), tables.get("sparsity")), run_colours(runs)
    errors = accuracy_by_run(tables.get("subnetwork"), tables.get("sparsity"), suffix="_se")
    if not bars:
        return None
    kinds = [k for k in BAR_STYLES if any(k in v for v in bars.values())]
    shown = sorted(bars)
    width = 0.8 / len(kinds)
    fig = Figure(figsize=(max(5.0, 1.0 + 0.5 * len(kinds) * len(shown)), 4), layout="constrained")
    ax = fig.add_subplot()
    for i, run in enumerate(shown):
        for k, kind in enumerate(kinds):
            if kind in bars[run]:
                error = errors.get(run, {}).get(kind)
                ax.bar(i - 0.4 + width * (k + 0.5), bars[run][kind], width, color=run_colour(run, colours),
                       edgecolor="black", linewidth=0.5, yerr=error, capsize=2 if error is not None else 0,
                       error_kw={"elinewidth": 0.8}, **BAR_STYLES[kind])
    # The run colour says which run; the fill says which model: one legend entry per fill, in grey.
    for kind in kinds:
        ax.bar(np.nan, np.nan, color="grey", edgecolor="black", linewidth=0.5, label=kind, **BAR_STYLES[kind])
    ax.set_xticks(range(len(shown)), shown, rotation=30, ha="right")
    ax.set_xlabel("run")
    ax.set_ylabel("greedy accuracy (%)")
    ax.set_title("Accuracy: start, full finetuning and subnetwork retraining"
                 + (" (error bars: ±1 binomial SE)" if errors else ""))
    # Headroom above the bars and their error bars, so the legend covers none of them.
    tops = [v + errors.get(run, {}).get(kind, 0.0) for run, values in bars.items() for kind, v in values.items()]
    ax.set_ylim(0, 1.3 * max(tops) or 1.0)
    ax.legend(fontsize=8, ncols=len(kinds), loc="upper center")
    return fig
