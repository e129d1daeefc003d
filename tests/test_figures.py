"""The figures, drawn from tables the study's own writers build: tiny checkpoints are diffed, ranked and
followed through snapshots by the library's stages, the table writers turn that into the study's tables,
and the tables go through CSV as the figure rules read them. Expected values are read off those tables."""

from collections.abc import Mapping

import matplotlib.colors as mcolors
import matplotlib.image as mimage
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from safetensors.numpy import save_file

from subnet_rl.algorithms import ALGORITHMS
from subnet_rl.atomic import write_parquet
from subnet_rl.comparisons import precision_table
from subnet_rl.config import RunSpec
from subnet_rl.diff import Criterion, default_criteria, diff_checkpoints
from subnet_rl.dynamics import training_dynamics
from subnet_rl.figures import FIGURES, draw
from subnet_rl.frontier import frontier_table
from subnet_rl.figures.algorithm_palette import algorithm_colours
from subnet_rl.figures.canvas import placeholder_figure, save_figure
from subnet_rl.figures.dynamics import dynamics_lines
from subnet_rl.figures.layers import layers_heatmap, representative_layers
from subnet_rl.figures.overlap import overlap_heatmap
from subnet_rl.figures.palette import MARKERS, OKABE_ITO, run_colours
from subnet_rl.figures.precision import precision_lines
from subnet_rl.figures.rank import rank_heatmap
from subnet_rl.figures.sparsity_vs_tolerance import sparsity_vs_tolerance
from subnet_rl.overlap import overlap_stats
from subnet_rl.stage_outputs import read_tables
from subnet_rl.step_sparsity_records import FILE as RECORDS_FILE
from subnet_rl.step_sparsity_records import records_frame
from subnet_rl.step_sparsity_table import read_records, step_sparsity_tables
from subnet_rl.figures.step_sparsity import step_sparsity_lines
from subnet_rl.ulp import checkpoint_ulps
from subnet_rl.ulp_table import ulp_tables
from subnet_rl.tables import (
    TITLES,
    dynamics_tables,
    layers_table,
    overlap_table,
    rank_table,
    sparsity_table,
    subnetwork_table,
    write_table,
)

CRITERION = "tol=1e-05"
SHAPES = {"model.layers.0.self_attn.q_proj.weight": (4, 4), "model.layers.0.mlp.down_proj.weight": (4, 4),
          "model.layers.1.self_attn.q_proj.weight": (4, 4), "model.embed_tokens.weight": (6, 4),
          "model.norm.weight": (4,)}
#: run -> (algorithm, regime, lr, precision, share of entries it updates)
RUN_SETTINGS = {"grpo-learn": ("grpo", "learning", 1e-4, "fp32", 0.6), "grpo-learn-bf16": ("grpo", "learning", 1e-4, "bf16", 0.3),
                "sft-learn": ("sft", "learning", 1e-4, "fp32", 0.7), "sft-learn-bf16": ("sft", "learning", 1e-4, "bf16", 0.4),
                "grpo-paper": ("grpo", "paper", 1e-6, "fp32", 0.2), "grpo-paper-bf16": ("grpo", "paper", 1e-6, "bf16", 0.1)}
RUNS = sorted(RUN_SETTINGS)
SNAPSHOT_RUNS = ("grpo-learn", "sft-learn")
#: run -> entries (of 1000) whose bf16 value changed in each of its 10 steps
STEP_RECORDS = {"grpo-learn": [40, 12, 0, 5, 3, 0, 2, 1, 1, 0], "sft-learn": [300, 200, 150, 120, 100, 90, 80, 70, 60, 50]}


def _specs() -> dict[str, dict]:
    """Each run's spec as the tables rule passes it (`RunSpec.as_dict()` of the config's run)."""
    config = {"datasets": {"addition": {"source": "synthetic", "task": "addition"}},
              "runs": {name: {"algorithm": a, "lr": lr, "steps": 10, "seed": 1, "dataset": "addition", "regime": regime,
                              "precision": precision} for name, (a, regime, lr, precision, _) in RUN_SETTINGS.items()}}
    return {name: RunSpec.from_config(config, name).as_dict() for name in RUN_SETTINGS}


def _updated(start: dict[str, np.ndarray], share: float, seed: int, scale: float = 1.0) -> dict[str, np.ndarray]:
    """`start` with a share of its entries moved by amounts from far below to far above the tolerances."""
    rng = np.random.default_rng(seed)
    return {name: (w + scale * (rng.random(w.shape) < share) * 10.0 ** rng.uniform(-9, -3, w.shape)).astype(np.float32)
            for name, w in start.items()}


def _changed(start: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([(after[n] != start[n]).ravel() for n in SHAPES])


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> dict[str, pd.DataFrame]:
    """The study's tables, as the figure rules read them (CSV, keyed by table name)."""
    from subnet_rl.rank import checkpoint_ranks  # torch: only the rank stage needs it

    root = tmp_path_factory.mktemp("study")
    start = {n: (np.random.default_rng(0).normal(size=s) * 1e-4).astype(np.float32) for n, s in SHAPES.items()}
    save_file(start, str(root / "start.safetensors"))
    criteria = default_criteria(exact_tolerances=[1e-5])
    weights, diffs, ranks = {}, {}, {}
    for seed, (run, settings) in enumerate(RUN_SETTINGS.items(), start=1):
        weights[run] = _updated(start, settings[-1], seed)
        save_file(weights[run], str(root / f"{run}.safetensors"))
        diffs[run] = diff_checkpoints(root / "start.safetensors", root / f"{run}.safetensors", criteria)
        ranks[run] = pd.DataFrame(checkpoint_ranks(root / "start.safetensors", root / f"{run}.safetensors", device="cpu"))
    save_file(_updated(weights["grpo-learn"], 0.05, 99), str(root / "subnet.safetensors"))
    subnet_diff = diff_checkpoints(root / "grpo-learn.safetensors", root / "subnet.safetensors", criteria)
    specs = _specs()
    accuracy = {("addition", "base", "start"): 0.4, **{("addition", "full", r): 0.45 + 0.05 * i for i, r in enumerate(RUNS)},
                ("addition", "subnet", "grpo-learn"): 0.6, ("addition", "random", "grpo-learn--same"): 0.42}
    examples = dict.fromkeys(accuracy, 200)  # examples scored per evaluation: each accuracy's n
    sparsity = sparsity_table(specs, diffs, accuracy, {}, examples=examples)
    pairs = []
    for i, a in enumerate(RUNS):
        for b in RUNS[i + 1:]:
            ca, cb = _changed(start, weights[a]), _changed(start, weights[b])
            pairs.append({"run_1": a, "run_2": b, **overlap_stats(ca.size, int(ca.sum()), int(cb.sum()), int((ca & cb).sum()))})
    steps, splits = [], []
    for run in SNAPSHOT_RUNS:
        save_file(_updated(start, RUN_SETTINGS[run][-1], 1 + RUNS.index(run), scale=0.5), str(root / f"{run}-step5.safetensors"))
        points = [(5, root / f"{run}-step5.safetensors"), (10, root / f"{run}.safetensors")]
        table, split = training_dynamics(root / "start.safetensors", points, Criterion.parse(CRITERION))
        (root / "dynamics" / run).mkdir(parents=True)
        steps.append(root / "dynamics" / run / "steps.parquet")
        splits.append(root / "dynamics" / run / "split.parquet")
        write_parquet(table, steps[-1])
        write_parquet(pd.DataFrame([split]), splits[-1])
    tables = {"sparsity": sparsity,
              "subnetwork": subnetwork_table(specs, accuracy, {"grpo-learn": subnet_diff}, {"grpo-learn": 0.1}, ["same"],
                                             examples=examples),
              "overlap": overlap_table(pd.DataFrame(pairs)), "layers": layers_table(diffs, CRITERION),
              "rank": rank_table(ranks, specs), "precision": precision_table(specs, sparsity, CRITERION),
              "frontier": frontier_table(specs, sparsity, CRITERION),
              **dynamics_tables([str(p) for p in steps], [str(p) for p in splits])}
    ulps = {run: pd.DataFrame(checkpoint_ulps(root / "start.safetensors", root / f"{run}.safetensors"))
            for run in RUNS if specs[run]["precision"] == "fp32"}
    tables.update(ulp_tables(ulps, diffs, specs))
    # step-level sparsity recorded by two runs (records as training writes them; grpo-learn has steps with none)
    records = {}
    for run, changed in STEP_RECORDS.items():
        folder = root / "results" / "checkpoints" / "full" / run
        folder.mkdir(parents=True)
        records_frame([[step, c, 1000] for step, c in enumerate(changed, start=1)]).to_parquet(folder / RECORDS_FILE)
        records[run] = read_records(folder, specs[run]["steps"], 1000)
    tables.update(step_sparsity_tables(records, specs))
    for name, df in tables.items():
        write_table(df, root / f"{name}.md", root / f"{name}.csv", TITLES[name])
    return read_tables([root / f"{name}.csv" for name in tables])


class RecordingTables(Mapping):
    """The tables, recording which ones a drawer asks for."""

    def __init__(self, tables: dict[str, pd.DataFrame]):
        self.tables, self.asked = tables, set()

    def __getitem__(self, name):
        self.asked.add(name)
        return self.tables[name]

    def __iter__(self):
        return iter(self.tables)

    def __len__(self):
        return len(self.tables)


def _saved(fig, tmp_path, name="f"):
    png, pdf = tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"
    save_figure(fig, png, pdf)
    assert pdf.read_bytes().startswith(b"%PDF")
    assert mimage.imread(png).std() > 0.01  # not a blank canvas
    assert not list(tmp_path.glob(".*.tmp"))


def _line_colours(fig) -> dict[str, str]:
    return {line.get_label(): mcolors.to_hex(line.get_color()).upper() for ax in fig.axes for line in ax.get_lines()}


def test_every_figure_is_drawn_from_the_study_tables_reading_only_the_tables_its_record_names(study):
    for spec in FIGURES.values():
        tables = RecordingTables(study)
        fig = spec.drawer_function()(tables, RUNS)
        assert isinstance(fig, Figure), f"{spec.name}: the study's tables did not give a figure"
        assert tables.asked and tables.asked <= set(spec.tables), f"{spec.name} reads {tables.asked}"
        assert spec.title != draw(spec.name, study, RUNS).axes[0].get_title()  # drawn, not the placeholder


def test_a_figure_without_its_tables_is_a_placeholder_naming_them(tmp_path):
    for spec in FIGURES.values():
        fig = draw(spec.name, {}, RUNS)
        assert fig.axes[0].get_title() == spec.title
        assert [t.get_text() for t in fig.axes[0].texts] == [
            f"not measured in this configuration: no data in {', '.join(spec.tables)}.csv"]
    _saved(placeholder_figure("Overlap", "not measured"), tmp_path)


def test_run_colours_are_stable_okabe_ito():
    colours = run_colours(RUNS)
    assert colours == run_colours(list(reversed(RUNS)) + ["grpo-learn"])  # order and repeats do not matter
    assert set(colours.values()) <= set(OKABE_ITO) and len(set(colours.values())) == len(RUNS)
    many = run_colours([f"run-{i:02d}" for i in range(10)])
    assert many["run-00"] == many["run-08"] == OKABE_ITO[0] and many["run-01"] == OKABE_ITO[1]


def test_algorithm_colours_follow_the_algorithm_registry():
    assert list(algorithm_colours()) == list(ALGORITHMS)
    assert algorithm_colours()["grpo"] == algorithm_colours(["zzz", "grpo"])["grpo"] == OKABE_ITO[0]
    assert algorithm_colours()["sft"] == "#000000"  # the control in black, apart from RL
    assert list(algorithm_colours(["zzz", "aaa"]))[-2:] == ["aaa", "zzz"]


def test_same_run_same_colour_across_figures(study):
    colours = run_colours(RUNS)
    one = dynamics_lines(study, RUNS)
    two = dynamics_lines({"dynamics": study["dynamics"][study["dynamics"]["run"] == "sft-learn"]}, RUNS)
    assert _line_colours(one)["sft-learn"] == _line_colours(two)["sft-learn"] == colours["sft-learn"]
    assert _line_colours(one)["grpo-learn"] == colours["grpo-learn"] != colours["sft-learn"]
    three = sparsity_vs_tolerance({"sparsity": study["sparsity"][study["sparsity"]["run"] != "grpo-learn"]}, RUNS)
    assert _line_colours(three)["sft-learn (sft)"] == colours["sft-learn"]
    with pytest.raises(ValueError, match="full run list"):
        dynamics_lines(study, ["grpo-learn"])


def test_markers_tell_apart_runs_beyond_eight_colours(study):
    runs = [f"r{i}" for i in range(9)]
    first = study["dynamics"][study["dynamics"]["run"] == "grpo-learn"]
    lines = {line.get_label(): line for line in
             dynamics_lines({"dynamics": pd.concat([first.assign(run=r) for r in runs])}, runs).axes[0].get_lines()}
    assert lines["r0"].get_color() == lines["r8"].get_color()
    assert (lines["r0"].get_marker(), lines["r8"].get_marker()) == (MARKERS[0], MARKERS[1])


def test_sparsity_vs_tolerance_draws_the_tol_criteria_only(study, tmp_path):
    fig = sparsity_vs_tolerance(study, RUNS)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["regime: learning", "regime: paper"]
    styles = {line.get_label(): line.get_linestyle() for line in panels[0].get_lines()}
    assert styles == {"grpo-learn (grpo)": "-", "grpo-learn-bf16 (grpo)": "-", "sft-learn (sft)": "--",
                      "sft-learn-bf16 (sft)": "--"}
    line = next(line for line in panels[0].get_lines() if line.get_label() == "grpo-learn (grpo)")
    tolerances = [1e-08, 1e-07, 1e-06, 1e-05]  # not exact_tol=1e-05, bf16_bitwise or exact
    assert panels[0].get_xscale() == "log" and list(line.get_xdata()) == tolerances
    row = study["sparsity"].set_index("run").loc["grpo-learn"]
    assert list(line.get_ydata()) == [row[f"sparsity tol={t:g}"] for t in tolerances]
    _saved(fig, tmp_path)
    no_tol = study["sparsity"][[c for c in study["sparsity"] if not c.startswith("sparsity tol=")]]
    assert sparsity_vs_tolerance({"sparsity": no_tol}, RUNS) is None


def test_overlap_heatmap(study, tmp_path):
    fig = overlap_heatmap(study, RUNS)
    ax = fig.axes[0]
    regime = {r: s[1] for r, s in RUN_SETTINGS.items()}
    expected = sorted(RUNS, key=lambda r: (regime[r], r))  # grouped by regime
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"{r} ({regime[r]})" for r in expected]
    pairs = study["overlap"]
    assert {t.get_text() for t in ax.texts} == (
        {f"{o:.0f} / {c:.0f}" for o, c in zip(pairs["o1"], pairs["random_o1"])}
        | {f"{o:.0f} / {c:.0f}" for o, c in zip(pairs["o2"], pairs["random_o2"])})
    row = pairs.iloc[0]
    a, b = expected.index(row["run_1"]), expected.index(row["run_2"])
    image = ax.get_images()[0].get_array()
    assert (image[a, b], image[b, a]) == pytest.approx((row["o1"], row["o2"]))  # o2: run_2's share, on run_2's row
    assert fig.axes[1].get_ylabel() == "%"
    _saved(fig, tmp_path)
    assert overlap_heatmap({"overlap": pairs.drop(columns="random_o2")}, RUNS) is None


def test_accuracy_bars(study, tmp_path):
    fig = FIGURES["accuracy"].drawer_function()(study, RUNS)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "greedy accuracy (%)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["start", "full", "subnetwork",
                                                                   "random mask, same density"]
    heights = sorted(p.get_height() for p in ax.patches if np.isfinite(p.get_height()))
    # grpo-learn: 4 bars from the subnetwork table; every other run start and full from the sparsity table.
    sub = study["subnetwork"].iloc[0]
    others = study["sparsity"][study["sparsity"]["run"] != "grpo-learn"]
    assert heights == pytest.approx(sorted([sub["accuracy_start"], sub["accuracy_full"], sub["accuracy_subnetwork"],
                                            sub["accuracy_random_same"], *others["accuracy_before"],
                                            *others["accuracy_after"]]))
    # Each bar carries its binomial standard error (the tables' *_se columns): +-1 SE around its top.
    spans = sorted((round(bar.get_height(), 6), float(np.ptp(container.errorbar.lines[2][0].get_segments()[0][:, 1])))
                   for container in ax.containers if getattr(container, "errorbar", None) for bar in container)
    assert len(spans) == len(heights) and "±1 binomial SE" in ax.get_title()
    for height, span in spans:
        p = height / 100
        assert span == pytest.approx(2 * 100 * (p * (1 - p) / 200) ** 0.5), height
    _saved(fig, tmp_path)
    assert FIGURES["accuracy"].drawer_function()({"subnetwork": study["subnetwork"][["run"]]}, RUNS) is None
    # Tables without errors: the same bars, no error bars (nothing is made up).
    plain = {name: df.drop(columns=[c for c in df.columns if c.endswith("_se")]) for name, df in study.items()}
    bare = FIGURES["accuracy"].drawer_function()(plain, RUNS).axes[0]
    assert not [c for c in bare.containers if getattr(c, "errorbar", None)] and "SE" not in bare.get_title()


def test_layers_heatmap(study, tmp_path):
    fig = layers_heatmap(study, RUNS)
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in panels] == ["grpo-learn", "sft-learn", "grpo-learn-bf16", "grpo-paper",
                                                 "grpo-paper-bf16", "sft-learn-bf16"]  # one run per algorithm first
    assert [t.get_text() for t in panels[0].get_yticklabels()] == ["0", "1", "-"]  # norms and embeddings last
    modules = [c for c in study["layers"] if c not in ("run", "layer")]
    assert [t.get_text() for t in panels[0].get_xticklabels()] == modules
    assert "shown" not in fig.get_suptitle()
    _saved(fig, tmp_path)
    many = pd.concat([study["layers"].assign(run=f"{r}-{i}") for r in RUNS[:2] for i in range(4)])
    fig = layers_heatmap({"layers": many}, RUNS)
    assert len([ax for ax in fig.axes if ax.get_images()]) == 6 and "6 of 8 runs" in fig.get_suptitle()
    assert layers_heatmap({"layers": study["layers"][["run", "layer"]]}, RUNS) is None


def test_representative_layers_put_one_run_per_algorithm_first(study):
    ordered = representative_layers(study["layers"], study["sparsity"])
    assert list(dict.fromkeys(ordered["run"]))[:2] == ["grpo-learn", "sft-learn"]  # registry order: grpo, then sft
    assert len(ordered) == len(study["layers"])


def test_dynamics_lines(study, tmp_path):
    fig = dynamics_lines(study, RUNS)
    assert len(fig.axes) == 2 and fig.axes[0].get_xlabel() == "training step"
    run = study["dynamics"][study["dynamics"]["run"] == "grpo-learn"]
    line = next(line for line in fig.axes[0].get_lines() if line.get_label() == "grpo-learn")
    assert list(line.get_xdata()) == [5, 10] and list(line.get_ydata()) == list(run["sparsity"])
    _saved(fig, tmp_path)
    assert len(dynamics_lines({"dynamics": study["dynamics"].drop(columns="changed_since_previous")}, RUNS).axes) == 1
    assert dynamics_lines({"dynamics": study["dynamics"].drop(columns="step")}, RUNS) is None


def test_precision_lines(study, tmp_path):
    fig = precision_lines(study, RUNS)
    ax = fig.axes[0]
    styles = {line.get_label(): line.get_linestyle() for line in ax.get_lines()}
    assert styles == {"grpo bf16": "--", "grpo fp32": "-", "sft bf16": "--", "sft fp32": "-"}
    assert ax.get_xscale() == "log"
    line = next(line for line in ax.get_lines() if line.get_label() == "grpo fp32")
    fp32 = study["precision"].query("algorithm == 'grpo' and precision == 'fp32'").sort_values("lr")
    assert list(line.get_xdata()) == [1e-6, 1e-4] and list(line.get_ydata()) == list(fp32["sparsity"])
    assert mcolors.to_hex(line.get_color()).upper() == algorithm_colours()["grpo"]
    _saved(fig, tmp_path)
    assert precision_lines({"precision": study["precision"].drop(columns="precision")}, RUNS) is None


def test_rank_heatmap(study, tmp_path):
    fig = rank_heatmap(study, RUNS)
    ax = fig.axes[0]
    rank = study["rank"]
    assert [t.get_text() for t in ax.get_xticklabels()] == sorted(set(rank["group"]))
    assert [t.get_text() for t in ax.get_yticklabels()] == RUNS
    # Each run's label keeps the run's colour; cells carry the rank table's mean rank.
    colours = run_colours(RUNS)
    assert [mcolors.to_hex(t.get_color()).upper() for t in ax.get_yticklabels()] == [colours[r] for r in RUNS]
    assert {t.get_text() for t in ax.texts} == {f"{v:.0f}" for v in rank["mean_rank_pct"]}
    _saved(fig, tmp_path)
    assert rank_heatmap({"rank": rank.drop(columns="mean_rank_pct")}, RUNS) is None


def test_step_sparsity_lines(study, tmp_path):
    """A line per recording run in its colour (RL solid, SFT dashed) through the step table's % changed; steps
    that changed nothing visibly keep their place at 0 on a symmetric log scale, a plain log scale without."""
    fig = step_sparsity_lines(study, RUNS)
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"grpo-learn (grpo)", "sft-learn (sft)"}
    assert (lines["grpo-learn (grpo)"].get_linestyle(), lines["sft-learn (sft)"].get_linestyle()) == ("-", "--")
    colours = run_colours(RUNS)
    assert mcolors.to_hex(lines["sft-learn (sft)"].get_color()).upper() == colours["sft-learn"]
    assert list(lines["grpo-learn (grpo)"].get_ydata()) == pytest.approx([c / 10 for c in STEP_RECORDS["grpo-learn"]])
    assert list(lines["sft-learn (sft)"].get_xdata()) == list(range(1, 11))
    assert ax.get_yscale() == "symlog" and "bf16" in ax.get_ylabel()
    _saved(fig, tmp_path)
    visible = study["step_sparsity"][study["step_sparsity"]["run"] == "sft-learn"]
    assert step_sparsity_lines({"step_sparsity": visible}, RUNS).axes[0].get_yscale() == "log"
    assert step_sparsity_lines({"step_sparsity": study["step_sparsity"].drop(columns="% changed")}, RUNS) is None
    assert step_sparsity_lines({"step_sparsity": study["step_sparsity"].iloc[0:0]}, RUNS) is None
