"""The ulp account: how large each run's updates are in half bf16 ulps, and whether "below half an ulp"
predicts the sparsity bf16 measures (RL and SFT runs drawn apart)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from matplotlib.figure import Figure

from .canvas import Tables, has_columns, numeric_columns
from .palette import run_colour, run_colours

#: The ulp summary's columns of the share below one half-ulp and of the measured bf16 sparsity.
BELOW, MEASURED = "below half-ulp (%)", "sparsity bf16_bitwise"


def _is_sft(algorithm: object) -> bool:
    return str(algorithm).lower() == "sft"


def ulp_histogram(tables: Tables, runs: Sequence[str]) -> Figure | None:
    """Left: % of entries per bin of half bf16 ulps, a line per run in its colour (RL solid, SFT dashed), the
    bins left of the dotted line round back to the start in bf16. Right, where the summary has them: the
    share below one half-ulp against the measured bf16 sparsity (RL circles, SFT squares), with the diagonal
    where the first explains the second."""
    bins, summary, colours = tables.get("ulp"), tables.get("ulp_summary"), run_colours(runs)
    if not has_columns(bins, ["run", "algorithm", "bin", "% of entries"]):
        return None
    df = numeric_columns(bins, ["% of entries"])
    if df.empty:
        return None
    labels = list(dict.fromkeys(df["bin"].astype(str)))  # the table's bin order
    points = (numeric_columns(summary, [BELOW, MEASURED]) if has_columns(summary, ["run", "algorithm", BELOW, MEASURED])
              else pd.DataFrame())
    fig = Figure(figsize=(11 if not points.empty else 7, 4.4), layout="constrained")
    axes = fig.subplots(1, 2 if not points.empty else 1, squeeze=False).ravel()
    ax = axes[0]
    for run, group in df.groupby(df["run"].astype(str), sort=True):
        sft = _is_sft(group["algorithm"].iloc[0])
        shares = group.set_index(group["bin"].astype(str))["% of entries"].reindex(labels)
        ax.plot(range(len(labels)), shares.to_numpy(), color=run_colour(run, colours), marker="o", markersize=3,
                linestyle="--" if sft else "-", label=f"{run} ({group['algorithm'].iloc[0]})")
    if "(1, 2]" in labels:
        ax.axvline(labels.index("(1, 2]") - 0.5, color="grey", linestyle=":", label="half an ulp: rounds away left")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_xlabel("total update |Δ| in half bf16 ulps of the start value")
    ax.set_ylabel("% of entries")
    ax.set_title("Update size in half bf16 ulps (RL solid, SFT dashed)")
    ax.legend(fontsize=7)
    if len(axes) > 1:
        ax = axes[1]
        for row in points.sort_values("run").to_dict("records"):
            ax.scatter(row[BELOW], row[MEASURED], color=run_colour(str(row["run"]), colours),
                       marker="s" if _is_sft(row["algorithm"]) else "o", label=str(row["run"]))
        values = [*points[BELOW], *points[MEASURED]]
        low, high = max(0.0, min(values) - 1.0), min(100.0, max(values) + 1.0)  # zoomed: shares sit near 100
        ax.plot([low, high], [low, high], color="grey", linestyle=":", linewidth=1)
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_xlabel("entries below half a bf16 ulp (%)")
        ax.set_ylabel("measured bf16 sparsity (%)")
        ax.set_title("Below half an ulp vs bf16 sparsity (SFT squares)")
        ax.legend(fontsize=7)
    return fig
