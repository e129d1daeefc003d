"""Mean numerical rank of the update by module group and run: sparse, but full rank?"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from .canvas import Tables, has_columns, numeric_columns
from .palette import run_colour, run_colours

#: The rank table's column of the mean numerical rank, % of the maximum (`rank.rank_summary` names it).
MEAN_RANK = "mean_rank_pct"


def rank_heatmap(tables: Tables, runs: Sequence[str]) -> Figure | None:
    """Mean numerical rank of the update (% of the maximum) by module group (columns) and run (rows), as an
    annotated heatmap that stays readable for a study's dozens of runs. Run names keep their colour on the
    row labels."""
    rank, colours = tables.get("rank"), run_colours(runs)
    if not has_columns(rank, ["run", "group", MEAN_RANK]):
        return None
    df = numeric_columns(rank, [MEAN_RANK])
    if df.empty:
        return None
    table = df.pivot_table(index=df["run"].astype(str), columns=df["group"].astype(str), values=MEAN_RANK,
                           aggfunc="mean").sort_index()
    rows, groups = list(table.index), list(table.columns)
    fig = Figure(figsize=(3.0 + 1.3 * len(groups), 1.2 + 0.28 * len(rows)), layout="constrained")
    ax = fig.add_subplot()
    values = table.to_numpy(dtype=float)
    image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap="viridis", vmin=0, vmax=100)
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=7, color="white" if value < 60 else "black")
    ax.set_xticks(range(len(groups)), groups)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    for label in ax.get_yticklabels():
        label.set_color(run_colour(label.get_text(), colours))
    ax.set_xlabel("module group")
    ax.set_ylabel("run")
    ax.set_title("Mean update rank (% of the maximum) by module group")
    fig.colorbar(image, ax=ax, label="mean update rank (% of maximum)")
    return fig
