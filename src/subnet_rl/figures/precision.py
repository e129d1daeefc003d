"""Sparsity against learning rate with fp32 and bf16 weights: how much of the sparsity is bf16 storage?"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure

from .algorithm_palette import algorithm_colours
from .canvas import Tables, has_columns, numeric_columns


def precision_lines(tables: Tables, runs: Sequence[str]) -> Figure | None:
    """Sparsity against learning rate per (algorithm, precision), fp32 solid and bf16 dashed, SFT included:
    a small update rounds away in bf16, whatever the algorithm. Lines are per algorithm, so they take the
    algorithm's colour (`algorithm_colours`), not a run's: `runs` is not used."""
    precision = tables.get("precision")
    if not has_columns(precision, ["algorithm", "lr", "precision", "sparsity"]):
        return None
    df = numeric_columns(precision, ["lr", "sparsity"])
    df = df[df["lr"] > 0]
    if df.empty:
        return None
    colours = algorithm_colours(sorted(df["algorithm"].astype(str).unique()))
    fig = Figure(figsize=(6, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for (algorithm, prec), group in df.groupby([df["algorithm"].astype(str), df["precision"].astype(str)]):
        line = group.groupby("lr")["sparsity"].mean().sort_index()
        ax.plot(line.index, line.to_numpy(), color=colours.get(algorithm, "grey"), marker="o",
                linestyle="--" if prec.lower() == "bf16" else "-", label=f"{algorithm} {prec}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("sparsity (% of entries unchanged)")
    ax.set_title("Sparsity vs learning rate by precision (fp32 solid, bf16 dashed)")
    ax.legend(fontsize=7)
    return fig
