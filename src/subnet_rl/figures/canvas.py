"""What every figure drawer shares: the headless Agg backend, the checks of a table's columns, the panel
grid, the placeholder drawn in place of a figure the tables cannot support, and saving.

Only the drawers (and `save_figure`'s caller) import this module: it loads matplotlib, which the
workflow's DAG parse (it reads the registry in `subnet_rl.figures`) must not pay for.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..atomic import atomic_path  # noqa: E402

#: The study's tables by name (file stem), as a figure's rule reads them; a table the configuration does not
#: write is absent.
Tables = Mapping[str, pd.DataFrame]
PNG_DPI = 120


def has_columns(df: pd.DataFrame | None, columns: list[str]) -> bool:
    """Whether `df` exists, has rows, and has every one of `columns` (what a figure needs of its table)."""
    return df is not None and not df.empty and all(c in df for c in columns)


def numeric_columns(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """`df` with `columns` as numbers; rows where any of them is missing or not a number are dropped."""
    out = df.copy()
    for c in columns:
        out[c] = pd.to_numeric(out[c], errors="coerce")
    return out.dropna(subset=columns)


def panel_grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    """(rows, columns) of a grid of `n` panels, at most `max_cols` wide."""
    cols = min(n, max_cols)
    return -(-n // cols), cols


def placeholder_figure(title: str, reason: str) -> Figure:
    """A figure that says what was not measured and why, in place of one the tables cannot support."""
    fig = Figure(figsize=(6, 3))
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, reason, ha="center", va="center", wrap=True, fontsize=11, transform=ax.transAxes)
    return fig


def save_figure(fig: Figure, png_path: str | os.PathLike, pdf_path: str | os.PathLike) -> None:
    """PNG (for a quick look) and PDF (for print), each written atomically; the figure is closed after."""
    try:
        with atomic_path(png_path) as tmp:
            fig.savefig(tmp, format="png", dpi=PNG_DPI)
        with atomic_path(pdf_path) as tmp:
            fig.savefig(tmp, format="pdf")
    finally:
        plt.close(fig)
