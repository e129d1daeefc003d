"""The study's figures: one registry record per figure, and `draw`, which draws one from its tables.

The workflow's DAG parse reads `FIGURES` (a rule per figure, reading just the tables its record names, so a
figure reruns only when its data changes), so this module imports no matplotlib and no drawer: a record
names its drawer as "module:function" text, imported when the figure is drawn. Every drawer takes the
tables and the config's full run list (colours stay fixed per run) and returns a matplotlib Figure, or
None when the tables lack what it needs; `draw` then returns a placeholder saying so, so a configuration
that did not measure something says so instead of leaving a figure out silently.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .canvas import Tables


@dataclass(frozen=True)
class FigureSpec:
    """A figure: its name (file stem and rule `figure_<name>`), the tables it reads, its title (also the
    placeholder's) and its drawer, "module:function" (module relative to this package)."""

    name: str
    tables: tuple[str, ...]
    title: str
    drawer: str

    @property
    def module(self) -> str:
        """The absolute name of the drawer's module."""
        return f"{__name__}.{self.drawer.partition(':')[0]}"

    @property
    def module_file(self) -> Path:
        """The drawer's source file (found without importing it), whose code hash the figure's rule carries."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or spec.origin is None:
            raise ValueError(f"figure {self.name!r}: drawer module {self.module} not found")
        return Path(spec.origin)

    def drawer_function(self) -> Callable[[Tables, Sequence[str]], Figure | None]:
        """The drawer, imported now (this loads matplotlib)."""
        return getattr(importlib.import_module(self.module), self.drawer.partition(":")[2])


FIGURES: dict[str, FigureSpec] = {f.name: f for f in [
    FigureSpec("sparsity_vs_tolerance", ("sparsity",), "Sparsity vs tolerance",
               "sparsity_vs_tolerance:sparsity_vs_tolerance"),
    FigureSpec("overlap", ("overlap", "sparsity"), "Overlap of updated entries", "overlap:overlap_heatmap"),
    FigureSpec("accuracy", ("subnetwork", "sparsity"), "Accuracy: start, full, subnetwork", "accuracy:accuracy_bars"),
    FigureSpec("layers", ("layers", "sparsity"), "Sparsity by layer and module", "layers:layers_heatmap"),
    FigureSpec("dynamics", ("dynamics",), "Training dynamics", "dynamics:dynamics_lines"),
    FigureSpec("precision", ("precision",), "Sparsity vs learning rate, fp32 vs bf16", "precision:precision_lines"),
    FigureSpec("rank", ("rank",), "Update rank by module group", "rank:rank_heatmap"),
    FigureSpec("ulp", ("ulp", "ulp_summary"), "Update size in half bf16 ulps", "ulp:ulp_histogram"),
    FigureSpec("frontier", ("frontier",), "Sparsity against accuracy gain", "frontier:frontier_scatter"),
    FigureSpec("step_sparsity", ("step_sparsity",), "Step-level sparsity (entries changed per step in bf16)",
               "step_sparsity:step_sparsity_lines"),
]}


def draw(name: str, tables: Tables, runs: Sequence[str]) -> Figure:
    """Figure `name` from its tables; `runs` is the config's full run list (colours stay fixed per run). A
    figure whose data this configuration did not produce is a placeholder saying so."""
    from .canvas import placeholder_figure

    spec = FIGURES[name]
    fig = spec.drawer_function()(tables, runs)
    if fig is None:
        fig = placeholder_figure(spec.title, f"not measured in this configuration: no data in {', '.join(spec.tables)}.csv")
    return fig

