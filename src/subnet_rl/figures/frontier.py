"""The sparsity-gain frontier: each run's sparsity against its accuracy gain, a panel per frontier group,
the SFT runs' curve (the one each RL run is compared with) drawn through their per-lr means."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from matplotlib.figure import Figure

from ..frontier import sft_curve
from .canvas import Tables, has_columns, numeric_columns, panel_grid
from .palette import run_colour, run_colours, run_marker

NEEDED = ["group", "run", "rl", "gain", "gain_se", "sparsity"]


def frontier_scatter(tables: Tables, runs: Sequence[str]) -> Figure | None:
    """Per group: SFT runs as grey squares and their curve (mean over seeds per lr and steps, by gain) as a
    grey line; RL runs as points in their colour, filled when compared with the curve and hollow when set aside
    (did not learn, or a gain outside the SFT runs'); horizontal bars are ±1 standard error of the gain."""
    frontier = tables.get("frontier")
    if not has_columns(frontier, NEEDED):
        return None
    df = numeric_columns(frontier, ["gain", "gain_se", "sparsity"])
    if df.empty:
        return None
    compared = (pd.to_numeric(df["sft_sparsity_at_gain"], errors="coerce").notna() if "sft_sparsity_at_gain" in df
                else False)
    df = df.assign(rl=df["rl"].astype(str).str.lower() == "true", compared=compared)
    colours, groups = run_colours(runs), sorted(df["group"].astype(str).unique())
    rows, cols = panel_grid(len(groups), max_cols=2)
    fig = Figure(figsize=(6.2 * cols, 4.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, group in zip(axes, groups):
        part = df[df["group"].astype(str) == group]
        sft = part[~part["rl"]]
        if not sft.empty:
            ax.errorbar(sft["gain"], sft["sparsity"], xerr=sft["gain_se"], fmt="s", color="grey", alpha=0.6,
                        markersize=5, capsize=2, label="SFT runs")
            curve = sft_curve(sft)
            ax.plot(curve["gain"], curve["sparsity"], color="grey", linewidth=1.5, label="SFT (mean per lr)")
        for row in part[part["rl"]].sort_values("run").to_dict("records"):
            colour = run_colour(str(row["run"]), colours)
            ax.errorbar(row["gain"], row["sparsity"], xerr=row["gain_se"], fmt=run_marker(str(row["run"]), colours),
                        color=colour, markerfacecolor=colour if row["compared"] else "white", markersize=7,
                        capsize=2, label=f"{row['run']} ({row['algorithm']})" if "algorithm" in row else row["run"])
        ax.axvline(0.0, color="black", linewidth=0.6, linestyle=":")
        ax.set_xlabel("accuracy gain (points, ±1 SE)")
        ax.set_ylabel("sparsity (% of entries unchanged)")
        ax.set_title(group, fontsize=8)
        ax.legend(fontsize=7)
    for ax in axes[len(groups):]:
        ax.set_axis_off()
    fig.suptitle("Sparsity vs accuracy gain (RL filled: compared with SFT at its gain)", fontsize=10)
    return fig
