"""Step-level sparsity: how many entries each optimizer step changes as bf16 sees them (after PULSE,
arXiv 2602.03839, which finds ~99% of per-step bf16 updates invisible), a line per run."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure

from ..step_sparsity_table import CHANGED
from .canvas import Tables, has_columns, numeric_columns
from .palette import run_colour, run_colours, run_marker


def step_sparsity_lines(tables: Tables, runs: Sequence[str]) -> Figure | None:
    """% of entries whose bf16 value changed in each optimizer step, a line per run in its colour (RL solid,
    SFT dashed), on a log scale; where some step changed nothing visibly, a symmetric log scale whose linear
    stretch reaches the smallest share measured, so those steps sit at 0 rather than off the axis."""
    steps, colours = tables.get("step_sparsity"), run_colours(runs)
    if not has_columns(steps, ["run", "algorithm", "step", CHANGED]):
        return None
    df = numeric_columns(steps, ["step", CHANGED])
    if df.empty:
        return None
    fig = Figure(figsize=(7, 4.4), layout="constrained")
    ax = fig.add_subplot()
    for run, group in df.groupby(df["run"].astype(str), sort=True):
        group = group.sort_values("step")
        algorithm = str(group["algorithm"].iloc[0])
        ax.plot(group["step"], group[CHANGED], color=run_colour(run, colours), marker=run_marker(run, colours),
                markersize=3, linestyle="--" if algorithm.lower() == "sft" else "-", label=f"{run} ({algorithm})")
    positive = df.loc[df[CHANGED] > 0, CHANGED]
    if len(positive) == len(df):
        ax.set_yscale("log")
    else:
        ax.set_yscale("symlog", linthresh=float(positive.min()) if not positive.empty else 1.0)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("entries whose bf16 value changed in the step (%)")
    ax.set_title("Step-level sparsity (RL solid, SFT dashed)")
    ax.legend(fontsize=7)
    return fig
