"""Training dynamics of the update: does the subnetwork settle early or keep growing?"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from matplotlib.figure import Figure

from .canvas import Tables, has_columns, numeric_columns
from .palette import run_colour, run_colours, run_marker


def dynamics_lines(tables: Tables, runs: Sequence[str]) -> Figure | None:
    """Sparsity against the start model at each saved step, per run (and, when measured, the % of entries
    changed since the previous checkpoint)."""
    dynamics, colours = tables.get("dynamics"), run_colours(runs)
    if not has_columns(dynamics, ["run", "step", "sparsity"]):
        return None
    df = numeric_columns(dynamics, ["step", "sparsity"])
    if df.empty:
        return None
    changed = ("changed_since_previous" in df
               and pd.to_numeric(df["changed_since_previous"], errors="coerce").notna().any())
    fig = Figure(figsize=(10 if changed else 5.5, 4), layout="constrained")
    axes = fig.subplots(1, 2 if changed else 1, squeeze=False).ravel()
    for run, group in df.groupby(df["run"].astype(str), sort=True):
        group = group.sort_values("step")
        style = {"color": run_colour(run, colours), "marker": run_marker(run, colours), "label": run}
        axes[0].plot(group["step"], group["sparsity"], **style)
        if changed:
            axes[1].plot(group["step"], pd.to_numeric(group["changed_since_previous"], errors="coerce"), **style)
    axes[0].set_title("Sparsity vs the start model")
    axes[0].set_ylabel("sparsity (% of entries unchanged)")
    if changed:
        axes[1].set_title("Changed since the previous checkpoint")
        axes[1].set_ylabel("entries changed (%)")
    for ax in axes:
        ax.set_xlabel("training step")
        ax.legend(fontsize=7)
    fig.suptitle("Training dynamics of the update")
    return fig
