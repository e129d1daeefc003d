"""The study's figures, drawn from its tables: one function per figure, each returning a Figure or None.

None means the table lacks what the figure needs; the caller then draws `placeholder_figure`, so a
configuration that did not measure something says so instead of leaving a figure out silently.
Runs keep one colour across every figure (`run_colours`, from the full sorted run list), from the
Okabe-Ito palette, which stays distinguishable with the common colour-vision deficiencies.
"""

from __future__ import annotations

import os
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .atomic import atomic_path  # noqa: E402

#: Okabe & Ito (2008), "Color Universal Design": orange, sky blue, bluish green, blue, vermillion, reddish purple,
#: black, and yellow last (it is the faintest on white, so it is used only from the 8th run on).
OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#000000", "#F0E442"]
#: Beyond 8 runs colours repeat; the marker then tells runs apart (cycle k of the palette -> MARKERS[k]).
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
#: The study's algorithms in a fixed order, so an algorithm's colour does not depend on which ones ran.
ALGORITHMS = ["grpo", "rloo", "dpo", "kto", "orpo", "simpo", "sft", "online_dpo"]  # sft: black, apart from RL
PNG_DPI = 120


def run_colours(runs: list[str]) -> dict[str, str]:
    """A colour per run, from the sorted, de-duplicated full run list: the same run gets the same colour in
    every figure as long as callers pass the same full list (not the runs of one table)."""
    return {run: OKABE_ITO[i % len(OKABE_ITO)] for i, run in enumerate(sorted(set(runs)))}


def algorithm_colours(algorithms: list[str] = ()) -> dict[str, str]:
    """A colour per algorithm: the known ones in a fixed order, others after them in sorted order."""
    known = ALGORITHMS + sorted(set(algorithms) - set(ALGORITHMS))
    return {a: OKABE_ITO[i % len(OKABE_ITO)] for i, a in enumerate(known)}


def _colour(run: str, colours: dict[str, str]) -> str:
    if run not in colours:
        raise ValueError(f"run {run!r} has no colour: build colours with run_colours() from the full run list")
    return colours[run]


def _marker(run: str, colours: dict[str, str]) -> str:
    """The marker of a run: which pass over the palette its colour came from (colours' keys are the full list)."""
    return MARKERS[(sorted(colours).index(run) // len(OKABE_ITO)) % len(MARKERS)]


def _has(df: pd.DataFrame | None, columns: list[str]) -> bool:
    return df is not None and not df.empty and all(c in df for c in columns)


def _numeric(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    out = df.copy()
    for c in columns:
        out[c] = pd.to_numeric(out[c], errors="coerce")
    return out.dropna(subset=columns)


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
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


# --- figures -------------------------------------------------------------------------------------------------

def _tolerance_columns(df: pd.DataFrame) -> dict[str, float]:
    out = {}
    for c in df.columns:
        match = re.fullmatch(r"sparsity tol=(\S+)", str(c))
        if match:
            try:
                out[c] = float(match.group(1))
            except ValueError:
                continue
    return {c: tol for c, tol in out.items() if tol > 0}


def sparsity_vs_tolerance(sparsity: pd.DataFrame | None, colours: dict[str, str]) -> Figure | None:
    """Sparsity against the tolerance of "unchanged", one line per run (RL solid, SFT dashed), one panel per
    regime so that RL runs and their SFT controls sit side by side: is the sparsity robust to the criterion?"""
    if not _has(sparsity, ["run", "algorithm"]):
        return None
    tolerances = _tolerance_columns(sparsity)
    if not tolerances:
        return None
    columns = sorted(tolerances, key=tolerances.get)
    df = sparsity.copy()
    df[columns] = df[columns].apply(pd.to_numeric, errors="coerce")
    df = df.dropna(subset=columns, how="all")
    if df.empty:
        return None
    regimes = sorted(df["regime"].astype(str).unique()) if "regime" in df else ["all runs"]
    rows, cols = _grid(len(regimes))
    fig = Figure(figsize=(4.5 * cols, 3.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True).ravel()
    x = [tolerances[c] for c in columns]
    for ax, regime in zip(axes, regimes):
        members = df[df["regime"].astype(str) == regime] if "regime" in df else df
        for row in members.sort_values("run").to_dict("records"):
            run, sft = str(row["run"]), str(row["algorithm"]).lower() == "sft"
            ax.plot(x, [row[c] for c in columns], color=_colour(run, colours), marker=_marker(run, colours),
                    linestyle="--" if sft else "-", label=f"{run} ({row['algorithm']})")
        ax.set_xscale("log")
        ax.set_title(f"regime: {regime}")
        ax.set_xlabel("tolerance (absolute change, log scale)")
        ax.set_ylabel("sparsity (% of entries unchanged)")
        ax.legend(fontsize=7)
    for ax in axes[len(regimes):]:
        ax.set_visible(False)
    fig.suptitle("Sparsity vs tolerance (RL solid, SFT dashed)")
    return fig


def overlap_heatmap(overlap: pd.DataFrame | None, regimes: dict[str, str]) -> Figure | None:
    """o1 of the row run against the column run (% of the row run's updated entries also updated by the
    column run), runs grouped by regime; each cell shows "o1 / random o1" so chance overlap is in view."""
    numeric = ["o1", "random_o1", "o2", "random_o2"]
    if not _has(overlap, ["run_1", "run_2", *numeric]):
        return None
    df = _numeric(overlap, numeric)
    if df.empty:
        return None
    runs = sorted(set(df["run_1"].astype(str)) | set(df["run_2"].astype(str)), key=lambda r: (regimes.get(r, ""), r))
    index = {r: i for i, r in enumerate(runs)}
    value = np.full((len(runs), len(runs)), np.nan)
    chance = np.full_like(value, np.nan)
    for row in df.to_dict("records"):
        a, b = index[str(row["run_1"])], index[str(row["run_2"])]
        value[a, b], chance[a, b] = row["o1"], row["random_o1"]
        value[b, a], chance[b, a] = row["o2"], row["random_o2"]  # o2 is run_2's share also updated by run_1
    size = max(4.5, 0.75 * len(runs) + 2.5)
    fig = Figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(value), cmap="viridis", vmin=0, vmax=100)
    fontsize = 7 if len(runs) <= 8 else 5
    for i in range(len(runs)):
        for j in range(len(runs)):
            if not np.isnan(value[i, j]):
                ax.text(j, i, f"{value[i, j]:.0f} / {chance[i, j]:.0f}", ha="center", va="center",
                        fontsize=fontsize, color="white" if value[i, j] < 60 else "black")
    labels = [f"{r} ({regimes[r]})" if r in regimes else r for r in runs]
    ax.set_xticks(range(len(runs)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(runs)), labels, fontsize=8)
    ax.set_xlabel("run (column): the other run")
    ax.set_ylabel("run (row): whose updated entries are counted")
    fig.colorbar(image, ax=ax, label="%")
    ax.set_title("Overlap o1 of updated entries (cell: o1 / random o1, %)")
    return fig


def accuracy_bars(subnetwork: pd.DataFrame | None, sparsity: pd.DataFrame | None,
                  colours: dict[str, str]) -> Figure | None:
    """Greedy accuracy per run: start, full finetuning, subnetwork retraining (and the same-density random
    mask when scored). Runs without a subnetwork retraining show start and full from the sparsity table."""
    bars: dict[str, dict[str, float]] = {}
    if _has(sparsity, ["run", "accuracy_before", "accuracy_after"]):
        for row in _numeric(sparsity, ["accuracy_before", "accuracy_after"]).to_dict("records"):
            bars[str(row["run"])] = {"start": row["accuracy_before"], "full": row["accuracy_after"]}
    if _has(subnetwork, ["run", "accuracy_start", "accuracy_full", "accuracy_subnetwork"]):
        kinds = {"start": "accuracy_start", "full": "accuracy_full", "subnetwork": "accuracy_subnetwork",
                 "random mask, same density": "accuracy_random_same"}
        for row in subnetwork.to_dict("records"):
            values = {k: pd.to_numeric(row.get(c), errors="coerce") for k, c in kinds.items()}
            bars[str(row["run"])] = {k: float(v) for k, v in values.items() if pd.notna(v)}
    bars = {run: values for run, values in bars.items() if values}
    if not bars:
        return None
    styles = {"start": {"alpha": 0.35}, "full": {}, "subnetwork": {"hatch": "//", "alpha": 0.8},
              "random mask, same density": {"hatch": "..", "alpha": 0.5}}
    kinds = [k for k in styles if any(k in v for v in bars.values())]
    runs = sorted(bars)
    width = 0.8 / len(kinds)
    fig = Figure(figsize=(max(5.0, 1.0 + 0.5 * len(kinds) * len(runs)), 4), layout="constrained")
    ax = fig.add_subplot()
    for i, run in enumerate(runs):
        for k, kind in enumerate(kinds):
            if kind in bars[run]:
                ax.bar(i - 0.4 + width * (k + 0.5), bars[run][kind], width, color=_colour(run, colours),
                       edgecolor="black", linewidth=0.5, **styles[kind])
    # The run colour says which run; the fill says which model: one legend entry per fill, in grey.
    for kind in kinds:
        ax.bar(np.nan, np.nan, color="grey", edgecolor="black", linewidth=0.5, label=kind, **styles[kind])
    ax.set_xticks(range(len(runs)), runs, rotation=30, ha="right")
    ax.set_xlabel("run")
    ax.set_ylabel("greedy accuracy (%)")
    ax.set_title("Accuracy: start, full finetuning and subnetwork retraining")
    # Headroom above the bars, so the legend covers none of them.
    ax.set_ylim(0, 1.3 * max(v for values in bars.values() for v in values.values()) or 1.0)
    ax.legend(fontsize=8, ncols=len(kinds), loc="upper center")
    return fig


def _layer_order(layers: pd.Series) -> list[str]:
    """Numbered layers in order, then the rest (embed, lm_head, final_norm...) by name."""
    labels = sorted(set(layers.astype(str)))
    number = pd.to_numeric(pd.Series(labels), errors="coerce").tolist()
    return [label for _, label in sorted(zip(number, labels), key=lambda x: (np.isnan(x[0]), x[0], x[1]))]


def layers_heatmap(layers: pd.DataFrame | None, max_panels: int = 6) -> Figure | None:
    """Sparsity by layer (rows) and module type (columns), one panel per run on one colour scale: is the
    update concentrated in some layers or modules? At most `max_panels` runs; the title says what was left."""
    if not _has(layers, ["run", "layer"]):
        return None
    modules = [c for c in layers.columns if c not in ("run", "layer")]
    values = layers[modules].apply(pd.to_numeric, errors="coerce")
    modules = [c for c in modules if values[c].notna().any()]
    if not modules:
        return None
    df = pd.concat([layers[["run", "layer"]].astype(str), values[modules]], axis=1)
    runs = list(dict.fromkeys(df["run"]))  # in the frame's order (`representative_layers` puts telling runs first)
    shown = runs[:max_panels]
    rows, cols = _grid(len(shown))
    fig = Figure(figsize=(0.55 * len(modules) * cols + 2.5, 4.2 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    # One colour scale over the panels shown, from their data: sparsities of 90-99% would all look alike on 0-100.
    shown_values = df.loc[df["run"].isin(shown), modules].to_numpy(dtype=float)
    low, high = float(np.nanmin(shown_values)), float(np.nanmax(shown_values))
    low, high = (low - 0.5, high + 0.5) if high - low < 1e-9 else (low, high)
    image = None
    for ax, run in zip(axes, shown):
        table = df[df["run"] == run].groupby("layer")[modules].mean()
        table = table.reindex(_layer_order(table.index.to_series()))
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
    dropped = f" ({len(shown)} of {len(runs)} runs shown)" if len(runs) > len(shown) else ""
    fig.suptitle(f"Sparsity by layer and module{dropped}")
    return fig


def dynamics_lines(dynamics: pd.DataFrame | None, colours: dict[str, str]) -> Figure | None:
    """Sparsity against the start model at each saved step, per run (and, when measured, the % of entries
    changed since the previous checkpoint): does the subnetwork settle early or keep growing?"""
    if not _has(dynamics, ["run", "step", "sparsity"]):
        return None
    df = _numeric(dynamics, ["step", "sparsity"])
    if df.empty:
        return None
    changed = ("changed_since_previous" in df
               and pd.to_numeric(df["changed_since_previous"], errors="coerce").notna().any())
    fig = Figure(figsize=(10 if changed else 5.5, 4), layout="constrained")
    axes = fig.subplots(1, 2 if changed else 1, squeeze=False).ravel()
    for run, group in df.groupby(df["run"].astype(str), sort=True):
        group = group.sort_values("step")
        style = {"color": _colour(run, colours), "marker": _marker(run, colours), "label": run}
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


def precision_lines(precision: pd.DataFrame | None,
                    colours: dict[str, str] | None = None) -> Figure | None:
    """Sparsity against learning rate per (algorithm, precision), fp32 solid and bf16 dashed, SFT included:
    how much of the sparsity is bf16 storage (a small update rounds away) rather than the algorithm?
    Lines are per algorithm, so `colours` maps algorithms (default: `algorithm_colours`)."""
    if not _has(precision, ["algorithm", "lr", "precision", "sparsity"]):
        return None
    df = _numeric(precision, ["lr", "sparsity"])
    df = df[df["lr"] > 0]
    if df.empty:
        return None
    colours = colours or algorithm_colours(sorted(df["algorithm"].astype(str).unique()))
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


def rank_bars(rank: pd.DataFrame | None, colours: dict[str, str]) -> Figure | None:
    """Mean numerical rank of the update (% of the maximum) by module group (columns) and run (rows), as an
    annotated heatmap that stays readable for a study's dozens of runs: sparse but full rank? The rank stage
    names the column mean_rank_pct; rank_pct is accepted too. Run names keep their colour on the row labels."""
    column = next((c for c in ("rank_pct", "mean_rank_pct") if rank is not None and c in rank), None)
    if column is None or not _has(rank, ["run", "group", column]):
        return None
    df = _numeric(rank, [column])
    if df.empty:
        return None
    table = df.pivot_table(index=df["run"].astype(str), columns=df["group"].astype(str), values=column,
                           aggfunc="mean").sort_index()
    runs, groups = list(table.index), list(table.columns)
    fig = Figure(figsize=(3.0 + 1.3 * len(groups), 1.2 + 0.28 * len(runs)), layout="constrained")
    ax = fig.add_subplot()
    values = table.to_numpy(dtype=float)
    image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap="viridis", vmin=0, vmax=100)
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=7, color="white" if value < 60 else "black")
    ax.set_xticks(range(len(groups)), groups)
    ax.set_yticks(range(len(runs)), runs, fontsize=7)
    for label in ax.get_yticklabels():
        label.set_color(_colour(label.get_text(), colours))
    ax.set_xlabel("module group")
    ax.set_ylabel("run")
    ax.set_title("Mean update rank (% of the maximum) by module group")
    fig.colorbar(image, ax=ax, label="mean update rank (% of maximum)")
    return fig


# --- the study's figure set ----------------------------------------------------------------------------------

#: figure name -> (the tables it reads, its title, how it is drawn from them). The workflow has a rule per
#: figure reading just these tables, so a figure reruns only when its data changes.
FIGURES: dict[str, tuple[tuple[str, ...], str]] = {
    "sparsity_vs_tolerance": (("sparsity",), "Sparsity vs tolerance"),
    "overlap": (("overlap", "sparsity"), "Overlap of updated entries"),
    "accuracy": (("subnetwork", "sparsity"), "Accuracy: start, full, subnetwork"),
    "layers": (("layers", "sparsity"), "Sparsity by layer and module"),
    "dynamics": (("dynamics",), "Training dynamics"),
    "precision": (("precision",), "Sparsity vs learning rate, fp32 vs bf16"),
    "rank": (("rank",), "Update rank by module group"),
}


def representative_layers(layers: pd.DataFrame | None, sparsity: pd.DataFrame | None) -> pd.DataFrame | None:
    """The layers table with its runs reordered so the figure's first panels are telling: the first run of
    each algorithm (in ALGORITHMS order), then the others (the figure says how many it left out)."""
    if not _has(layers, ["run"]) or not _has(sparsity, ["run", "algorithm"]):
        return layers
    present = set(layers["run"].astype(str))
    runs = [r for r in sparsity.sort_values("run")["run"].astype(str) if r in present]
    algorithm = dict(zip(sparsity["run"].astype(str), sparsity["algorithm"].astype(str)))
    order = {a: i for i, a in enumerate(ALGORITHMS)}
    first = {}
    for run in runs:
        first.setdefault(algorithm[run], run)
    chosen = sorted(first.values(), key=lambda r: order.get(algorithm[r], len(order)))
    chosen += [r for r in runs if r not in chosen]
    chosen += sorted(present - set(chosen))
    out = layers.copy()
    out["run"] = pd.Categorical(out["run"].astype(str), categories=chosen, ordered=True)
    return out.sort_values("run", kind="stable").assign(run=lambda d: d["run"].astype(str))


def draw(name: str, tables: dict[str, pd.DataFrame], runs: list[str]) -> Figure:
    """Figure `name` from its tables; `runs` is the config's full run list (colours stay fixed per run). A
    figure whose data this configuration did not produce is a placeholder saying so."""
    colours = run_colours(runs)
    regimes = ({str(r): str(g) for r, g in zip(tables["sparsity"]["run"], tables["sparsity"]["regime"])}
               if _has(tables.get("sparsity"), ["run", "regime"]) else {})
    makers = {
        "sparsity_vs_tolerance": lambda: sparsity_vs_tolerance(tables.get("sparsity"), colours),
        "overlap": lambda: overlap_heatmap(tables.get("overlap"), regimes),
        "accuracy": lambda: accuracy_bars(tables.get("subnetwork"), tables.get("sparsity"), colours),
        "layers": lambda: layers_heatmap(representative_layers(tables.get("layers"), tables.get("sparsity"))),
        "dynamics": lambda: dynamics_lines(tables.get("dynamics"), colours),
        "precision": lambda: precision_lines(tables.get("precision")),
        "rank": lambda: rank_bars(tables.get("rank"), colours),
    }
    needs, title = FIGURES[name]
    fig = makers[name]()
    if fig is None:
        fig = placeholder_figure(title, f"not measured in this configuration: no data in {', '.join(needs)}.csv")
    return fig
