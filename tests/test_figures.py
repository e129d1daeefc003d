import matplotlib.colors as mcolors
import matplotlib.image as mimage
import pandas as pd
import pytest

from subnet_rl.figures import (MARKERS, OKABE_ITO, accuracy_bars, algorithm_colours, dynamics_lines,
                               layers_heatmap, overlap_heatmap, placeholder_figure, precision_lines, rank_bars,
                               run_colours, save_figure, sparsity_vs_tolerance)

RUNS = ["grpo-a", "rloo-a", "sft-a", "grpo-p", "sft-from-init"]
COLOURS = run_colours(RUNS)

SPARSITY = pd.DataFrame([
    {"run": "grpo-a", "algorithm": "grpo", "regime": "learning", "accuracy_before": 40.0, "accuracy_after": 50.0,
     "sparsity tol=1e-08": 80.0, "sparsity tol=1e-05": 95.0, "sparsity exact": 70.0},
    {"run": "sft-a", "algorithm": "sft", "regime": "learning", "accuracy_before": 40.0, "accuracy_after": 45.0,
     "sparsity tol=1e-08": 5.0, "sparsity tol=1e-05": 20.0, "sparsity exact": 2.0},
    {"run": "grpo-p", "algorithm": "grpo", "regime": "paper", "accuracy_before": 40.0, "accuracy_after": 52.0,
     "sparsity tol=1e-08": 60.0, "sparsity tol=1e-05": 90.0, "sparsity exact": 50.0},
])
SUBNETWORK = pd.DataFrame([
    {"run": "grpo-a", "accuracy_start": 40.0, "accuracy_full": 50.0, "accuracy_subnetwork": 49.0,
     "accuracy_random_same": 42.0},
])
OVERLAP = pd.DataFrame([
    {"run_1": "grpo-a", "run_2": "rloo-a", "o1": 60.0, "random_o1": 10.0, "o2": 20.0, "random_o2": 3.0},
    {"run_1": "grpo-a", "run_2": "grpo-p", "o1": 70.0, "random_o1": 12.0, "o2": 30.0, "random_o2": 4.0},
])
LAYERS = pd.DataFrame([
    {"run": r, "layer": layer, "q_proj": 90.0 + i, "down_proj": 95.0 - i, "input_layernorm": None if i else 99.0}
    for r in ("grpo-a", "rloo-a") for i, layer in enumerate(["0", "1", "2", "embed"])
])
DYNAMICS = pd.DataFrame([{"run": r, "step": s, "sparsity": 100.0 - s * k, "changed_since_previous": k * 2.0}
                         for k, r in ((1, "grpo-a"), (3, "sft-a")) for s in (0, 5, 10)])
PRECISION = pd.DataFrame([{"algorithm": a, "lr": lr, "precision": p, "run": f"{a}-{p}-{lr:.0e}", "sparsity": s}
                          for a, p, values in (("grpo", "fp32", (50.0, 30.0)), ("grpo", "bf16", (90.0, 70.0)),
                                               ("sft", "fp32", (2.0, 1.0)), ("sft", "bf16", (10.0, 5.0)))
                          for lr, s in zip((1e-6, 1e-5), values)])
RANK = pd.DataFrame([{"run": r, "group": g, "rank_pct": v} for r in ("grpo-a", "sft-a")
                     for g, v in (("attention", 99.0), ("mlp", 97.0), ("embedding", 50.0))])


def _saved(fig, tmp_path, name="f"):
    png, pdf = tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"
    save_figure(fig, png, pdf)
    assert pdf.read_bytes().startswith(b"%PDF")
    pixels = mimage.imread(png)
    assert pixels.std() > 0.01  # not a blank canvas
    assert not list(tmp_path.glob(".*.tmp"))
    return pixels


def _line_colours(fig) -> dict[str, str]:
    return {line.get_label(): mcolors.to_hex(line.get_color()).upper()
            for ax in fig.axes for line in ax.get_lines()}


def test_run_colours_are_stable_okabe_ito():
    colours = run_colours(RUNS)
    assert colours == run_colours(list(reversed(RUNS)) + ["grpo-a"])  # order and repeats do not matter
    assert set(colours.values()) <= set(OKABE_ITO) and len(set(colours.values())) == len(RUNS)
    many = run_colours([f"run-{i:02d}" for i in range(10)])
    assert many["run-00"] == many["run-08"] == OKABE_ITO[0] and many["run-01"] == OKABE_ITO[1]
    assert algorithm_colours()["grpo"] == algorithm_colours(["zzz", "grpo"])["grpo"]


def test_same_run_same_colour_across_figures():
    one = dynamics_lines(DYNAMICS, COLOURS)
    two = dynamics_lines(DYNAMICS[DYNAMICS["run"] == "sft-a"], COLOURS)
    assert _line_colours(one)["sft-a"] == _line_colours(two)["sft-a"] == COLOURS["sft-a"]
    assert _line_colours(one)["grpo-a"] == COLOURS["grpo-a"] != COLOURS["sft-a"]
    three = sparsity_vs_tolerance(SPARSITY[SPARSITY["run"] != "grpo-a"], COLOURS)
    assert _line_colours(three)["sft-a (sft)"] == COLOURS["sft-a"]
    with pytest.raises(ValueError, match="full run list"):
        dynamics_lines(DYNAMICS, run_colours(["grpo-a"]))


def test_markers_tell_apart_runs_beyond_eight_colours():
    runs = [f"r{i}" for i in range(9)]
    dynamics = pd.DataFrame([{"run": r, "step": s, "sparsity": 50.0 + s} for r in runs for s in (1, 2)])
    lines = {line.get_label(): line for line in dynamics_lines(dynamics, run_colours(runs)).axes[0].get_lines()}
    assert lines["r0"].get_color() == lines["r8"].get_color()
    assert (lines["r0"].get_marker(), lines["r8"].get_marker()) == (MARKERS[0], MARKERS[1])


def test_sparsity_vs_tolerance(tmp_path):
    fig = sparsity_vs_tolerance(SPARSITY, COLOURS)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == ["regime: learning", "regime: paper"]
    styles = {line.get_label(): line.get_linestyle() for line in panels[0].get_lines()}
    assert styles == {"grpo-a (grpo)": "-", "sft-a (sft)": "--"}
    assert panels[0].get_xscale() == "log" and list(panels[0].get_lines()[0].get_xdata()) == [1e-08, 1e-05]
    assert "%" in panels[0].get_ylabel()
    _saved(fig, tmp_path)
    assert sparsity_vs_tolerance(SPARSITY.drop(columns=["sparsity tol=1e-08", "sparsity tol=1e-05"]), COLOURS) is None
    assert sparsity_vs_tolerance(None, COLOURS) is None


def test_overlap_heatmap(tmp_path):
    fig = overlap_heatmap(OVERLAP, {"grpo-a": "learning", "rloo-a": "learning", "grpo-p": "paper"})
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["grpo-a (learning)", "rloo-a (learning)", "grpo-p (paper)"]  # grouped by regime
    texts = {t.get_text() for t in ax.texts}
    assert {"60 / 10", "20 / 3", "70 / 12", "30 / 4"} == texts
    image = ax.get_images()[0].get_array()
    assert image[1, 0] == 20.0 and image[0, 1] == 60.0  # row rloo-a, column grpo-a: o2 of the pair
    assert fig.axes[1].get_ylabel() == "%"
    _saved(fig, tmp_path)
    assert overlap_heatmap(OVERLAP.drop(columns="random_o2"), {}) is None


def test_accuracy_bars(tmp_path):
    fig = accuracy_bars(SUBNETWORK, SPARSITY, COLOURS)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "greedy accuracy (%)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["start", "full", "subnetwork",
                                                                   "random mask, same density"]
    heights = sorted(p.get_height() for p in ax.patches if p.get_height() == p.get_height())
    # grpo-a: 4 bars from the subnetwork table; grpo-p and sft-a: start and full from the sparsity table.
    assert heights == sorted([40.0, 50.0, 49.0, 42.0, 40.0, 52.0, 40.0, 45.0])
    _saved(fig, tmp_path)
    assert accuracy_bars(SUBNETWORK.drop(columns="accuracy_random_same"), None, COLOURS) is not None
    assert accuracy_bars(None, None, COLOURS) is None
    assert accuracy_bars(SUBNETWORK[["run"]], SPARSITY[["run"]], COLOURS) is None


def test_layers_heatmap(tmp_path):
    fig = layers_heatmap(LAYERS)
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in panels] == ["grpo-a", "rloo-a"]
    assert [t.get_text() for t in panels[0].get_yticklabels()] == ["0", "1", "2", "embed"]
    assert [t.get_text() for t in panels[0].get_xticklabels()] == ["q_proj", "down_proj", "input_layernorm"]
    assert "shown" not in fig.get_suptitle()
    _saved(fig, tmp_path)
    many = pd.concat([LAYERS.assign(run=f"run-{i}") for i in range(8)])
    fig = layers_heatmap(many)
    assert len([ax for ax in fig.axes if ax.get_images()]) == 6 and "6 of 8 runs" in fig.get_suptitle()
    assert layers_heatmap(LAYERS[["run", "layer"]]) is None


def test_dynamics_lines(tmp_path):
    fig = dynamics_lines(DYNAMICS, COLOURS)
    assert len(fig.axes) == 2 and fig.axes[0].get_xlabel() == "training step"
    assert list(fig.axes[0].get_lines()[0].get_ydata()) == [100.0, 95.0, 90.0]
    _saved(fig, tmp_path)
    assert len(dynamics_lines(DYNAMICS.drop(columns="changed_since_previous"), COLOURS).axes) == 1
    assert dynamics_lines(DYNAMICS.drop(columns="step"), COLOURS) is None


def test_precision_lines(tmp_path):
    fig = precision_lines(PRECISION)
    ax = fig.axes[0]
    styles = {line.get_label(): line.get_linestyle() for line in ax.get_lines()}
    assert styles == {"grpo bf16": "--", "grpo fp32": "-", "sft bf16": "--", "sft fp32": "-"}
    assert ax.get_xscale() == "log"
    line = next(line for line in ax.get_lines() if line.get_label() == "grpo fp32")
    assert list(line.get_xdata()) == [1e-6, 1e-5] and list(line.get_ydata()) == [50.0, 30.0]
    assert mcolors.to_hex(line.get_color()).upper() == algorithm_colours()["grpo"]
    _saved(fig, tmp_path)
    assert precision_lines(PRECISION.drop(columns="precision")) is None


def test_rank_bars(tmp_path):
    fig = rank_bars(RANK, COLOURS)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["attention", "embedding", "mlp"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["grpo-a", "sft-a"]
    # Each run's label keeps the run's colour; cells carry the rank values.
    assert [mcolors.to_hex(t.get_color()).upper() for t in ax.get_yticklabels()] == [COLOURS["grpo-a"], COLOURS["sft-a"]]
    assert {t.get_text() for t in ax.texts} == {f"{v:.0f}" for v in RANK["rank_pct"]}
    _saved(fig, tmp_path)
    assert rank_bars(RANK.rename(columns={"rank_pct": "mean_rank_pct"}), COLOURS) is not None
    assert rank_bars(RANK.drop(columns="rank_pct"), COLOURS) is None


def test_placeholder(tmp_path):
    fig = placeholder_figure("Overlap", "not measured in this config: one run only")
    assert fig.axes[0].get_title() == "Overlap"
    assert any("not measured" in t.get_text() for t in fig.axes[0].texts)
    _saved(fig, tmp_path)


def test_representative_layers_put_one_run_per_algorithm_first():
    from subnet_rl.figures import representative_layers

    runs = ["dpo-a", "dpo-b", "grpo-a", "grpo-b", "sft-a"]
    layers = pd.concat([LAYERS[LAYERS["run"] == "grpo-a"].assign(run=r) for r in runs])
    sparsity = pd.DataFrame({"run": runs, "algorithm": ["dpo", "dpo", "grpo", "grpo", "sft"]})
    ordered = representative_layers(layers, sparsity)
    assert list(dict.fromkeys(ordered["run"])) == ["grpo-a", "dpo-a", "sft-a", "dpo-b", "grpo-b"]
    assert len(ordered) == len(layers)
