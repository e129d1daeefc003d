"""Sparsity by layer and module type, one panel per run: is the update concentrated somewhere?"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .algorithm_palette import algorithm_order
from .canvas import Tables, has_columns, panel_grid

#: The layers table's row keys; its other columns are module types.
KEYS = ("run", "layer")
MAX_PANELS = 6


def layer_order(layers: pd.Series) -> list[str]:
    """Numbered layers in order, then the rest (the layers table's "-": norms and embeddings) by name."""
    labels = sorted(set(layers.astype(str)))
    number = pd.to_numeric(pd.Series(labels), errors="coerce").tolist()
    return [label for _, label in sorted(zip(number, labels), key=lambda x: (np.isnan(x[0]), x[0], x[1]))]


def representative_layers(layers: pd.DataFrame | None, sparsity: pd.DataFrame | None) -> pd.DataFrame | None:
    """The layers table with its runs reordered so the figure's first panels are telling: the first run of
    each algorithm (in the algorithm registry's order), then the others (the figure says how many it left out)."""
    if not has_columns(layers, ["run"]) or not has_columns(sparsity, ["run", "algorithm"]):
        return layers
    present = set(layers["run"].astype(str))
    runs = [r for r in sparsity.sort_values("run")["run"].astype(str) if r in present]
    algorithm = dict(zip(sparsity["run"].astype(str), sparsity["algorithm"].astype(str)))
    order = {a: i for i, a in enumerate(algorithm_order())}
    first: dict[str, str] = {}
    for run in runs:
        first.setdefault(algorithm[run], run)
    chosen = sorted(first.values(), key=lambda r: order.get(algorithm[r], len(order)))
    chosen += [r for r in runs if r not in chosen]
    chosen += sorted(present - set(chosen))
    out = layers.copy()
    out["run"] = pd.Categorical(out["run"].astype(str), categories=chosen, ordered=True)
    return out.sort_values("run", kind="stable").assign(run=lambda d: d["run"].astype(str))


def layers_heatmap(tables: Tables, runs: Sequence[str], max_panels: int = MAX_PANELS) -> Figure | None:
    """Sparsity by layer (rows) and module type (columns), one panel per run on one colour scale, the runs
    of `representative_layers` first. At most `max_panels` runs; the title says what was left. Panels are
    titled, not coloured, by run: `runs` is not used."""
    layers = representative_layers(tables.get("layers"), tables.get("sparsity"))
    if not has_columns(layers, list(KEYS)):
        return None
    modules = [c for c in layers.columns if c not in KEYS]
    values = layers[modules].apply(pd.to_numeric, errors="coerce")
    modules = [c for c in modules if values[c].notna().any()]
    if not modules:
        return None
    df = pd.concat([layers[list(KEYS)].astype(str), values[modules]], axis=1)
    panel_runs = list(dict.fromkeys(df["run"]))  # in the frame's order (`representative_layers` put telling runs first)
    shown = panel_runs[:max_panels]
    rows, cols = panel_grid(len(shown))
    fig = Figure(figsize=(0.55 * len(modules) * cols + 2.5, 4.2 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    # One colour scale over the panels shown, from their data: sparsities of 90-99% would all look alike on 0-100.
    shown_values = df.loc[df["run"].isin(shown), modules].to_numpy(dtype=float)
    low, high = float(np.nanmin(shown_values)), float(np.nanmax(shown_values))
    low, high = (low - 0.5, high + 0.5) if high - low < 1e-9 else (low, high)
    image = None
    for ax, run in zip(axes, shown):
        table = df[df["run"] == run].groupby("layer")[modules].mean()
        table = table.reindex(layer_order(table.index.to_series()))
        image = ax.imshow(np.ma.masked_invalid(table.to_numpy(dtype=float)), aspect="auto", cmap="viridis",
                          vmin=low, vmax=high)
        ax.set_xticks(range(len(modules)), modules, rotation=60, ha="right", fontsize=7)
        step = max(1, len(table) // 16)
        ax.set_yticks(range(0, len(table), step), list(table.index)[::step], fontsize=7)
        ax.set_title(run, fontsize=9)
        ax.set_xlabel("module type")
        ax.set_ylabel("layer")
    for ax in axes[len(shown):]:
        ax.set_visible(False)
    fig.colorbar(image, ax=axes[:len(shown)].tolist(), label="sparsity (% of entries unchanged)")
    dropped = f" ({len(shown)} of {len(panel_runs)} runs shown)" if len(panel_runs) > len(shown) else ""
    fig.suptitle(f"Sparsity by layer and module{dropped}")
    return fig
