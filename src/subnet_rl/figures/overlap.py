"""Overlap of the updated entries of every pair of runs, against the overlap of random masks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .canvas import Tables, has_columns, numeric_columns


def run_regimes(sparsity: pd.DataFrame | None) -> dict[str, str]:
    """Each run's regime, from the sparsity table (empty when the table or its regime column is missing)."""
    if not has_columns(sparsity, ["run", "regime"]):
        return {}
    return {str(r): str(g) for r, g in zip(sparsity["run"], sparsity["regime"])}


def overlap_heatmap(tables: Tables, runs: Sequence[str]) -> Figure | None:
    """o1 of the row run against the column run (% of the row run's updated entries also updated by the
    column run), runs grouped by regime; each cell shows "o1 / random o1" so chance overlap is in view.
    Cells are coloured by value, not by run: `runs` is not used."""
    overlap, regimes = tables.get("overlap"), run_regimes(tables.get("sparsity"))
    numeric = ["o1", "random_o1", "o2", "random_o2"]
    if not has_columns(overlap, ["run_1", "run_2", *numeric]):
        return None
    df = numeric_columns(overlap, numeric)
    if df.empty:
        return None
    pair_runs = sorted(set(df["run_1"].astype(str)) | set(df["run_2"].astype(str)),
                       key=lambda r: (regimes.get(r, ""), r))
    index = {r: i for i, r in enumerate(pair_runs)}
    value = np.full((len(pair_runs), len(pair_runs)), np.nan)
    chance = np.full_like(value, np.nan)
    for row in df.to_dict("records"):
        a, b = index[str(row["run_1"])], index[str(row["run_2"])]
        value[a, b], chance[a, b] = row["o1"], row["random_o1"]
        value[b, a], chance[b, a] = row["o2"], row["random_o2"]  # o2 is run_2's share also updated by run_1
    size = max(4.5, 0.75 * len(pair_runs) + 2.5)
    fig = Figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(value), cmap="viridis", vmin=0, vmax=100)
    fontsize = 7 if len(pair_runs) <= 8 else 5
    for i in range(len(pair_runs)):
        for j in range(len(pair_runs)):
            if not np.isnan(value[i, j]):
                ax.text(j, i, f"{value[i, j]:.0f} / {chance[i, j]:.0f}", ha="center", va="center",
                        fontsize=fontsize, color="white" if value[i, j] < 60 else "black")
    labels = [f"{r} ({regimes[r]})" if r in regimes else r for r in pair_runs]
    ax.set_xticks(range(len(pair_runs)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(pair_runs)), labels, fontsize=8)
    ax.set_xlabel("run (column): the other run")
    ax.set_ylabel("run (row): whose updated entries are counted")
    fig.colorbar(image, ax=ax, label="%")
    ax.set_title("Overlap o1 of updated entries (cell: o1 / random o1, %)")
    return fig
