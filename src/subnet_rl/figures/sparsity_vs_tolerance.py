"""Sparsity against the tolerance of "unchanged": is the sparsity robust to the criterion?"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from matplotlib.figure import Figure

from ..diff import Criterion
from .canvas import Tables, has_columns, panel_grid
from .palette import run_colour, run_colours, run_marker

SPARSITY_PREFIX = "sparsity "


def tolerance_columns(sparsity: pd.DataFrame) -> dict[str, float]:
    """The sparsity table's columns of the paper's `tol=T` criteria (T > 0, which a log axis can show), with T."""
    out = {}
    for column in map(str, sparsity.columns):
        if not column.startswith(SPARSITY_PREFIX):
            continue
        try:
            criterion = Criterion.parse(column.removeprefix(SPARSITY_PREFIX))
        except ValueError:
            continue
        if criterion.kind == "tolerance" and criterion.tolerance > 0:
            out[column] = criterion.tolerance
    return out


def sparsity_vs_tolerance(tables: Tables, runs: Sequence[str]) -> Figure | None:
    """Sparsity against the tolerance, one line per run (RL solid, SFT dashed), one panel per regime so that
    RL runs and their SFT controls sit side by side."""
    sparsity, colours = tables.get("sparsity"), run_colours(runs)
    if not has_columns(sparsity, ["run", "algorithm"]):
        return None
    tolerances = tolerance_columns(sparsity)
    if not tolerances:
        return None
    columns = sorted(tolerances, key=tolerances.get)
    df = sparsity.copy()
    df[columns] = df[columns].apply(pd.to_numeric, errors="coerce")
    df = df.dropna(subset=columns, how="all")
    if df.empty:
        return None
    regimes = sorted(df["regime"].astype(str).unique()) if "regime" in df else ["all runs"]
    rows, cols = panel_grid(len(regimes))
    fig = Figure(figsize=(4.5 * cols, 3.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True).ravel()
    x = [tolerances[c] for c in columns]
    for ax, regime in zip(axes, regimes):
        members = df[df["regime"].astype(str) == regime] if "regime" in df else df
        for row in members.sort_values("run").to_dict("records"):
            run, sft = str(row["run"]), str(row["algorithm"]).lower() == "sft"
            ax.plot(x, [row[c] for c in columns], color=run_colour(run, colours), marker=run_marker(run, colours),
                    linestyle="--" if sft else "-", label=f"{run} ({row['algorithm']})")
        ax.set_xscale("log")
        ax.set_title(f"regime: {regime}")
        ax.set_xlabel("tolerance (absolute change, log scale)")
        ax.set_ylabel("sparsity (% of entries unchanged)")
        ax.legend(fontsize=7)
    for ax in axes[len(regimes):]:
        ax.set_visible(False)
    fig.suptitle("Sparsity vs tolerance (RL solid, SFT dashed)")
    return fig
