"""The sparsity-gain frontier: each RL run against the SFT runs of its group interpolated at its own gain,
beyond the noise of that gain; and the `matched-gain` finding that reads it."""

import math

import pandas as pd
import pytest

from subnet_rl.config import RunSpec
from subnet_rl.findings import FAILS, HOLDS, NOT_MEASURED, compute_findings
from subnet_rl.frontier import DENSER, NOT_LEARNED, OUTSIDE, SPARSER, WITHIN, frontier_table, interpolated, sft_curve
from subnet_rl.tables import sparsity_table

CRITERION = "tol=1e-05"
NUMEL = 10_000


def _spec(name, algorithm, lr, seed=1, **kw):
    return RunSpec.from_dict({"name": name, "algorithm": algorithm, "lr": lr, "steps": 10, "seed": seed,
                              "dataset": "addition", "eval_dataset": "addition", "regime": "frontier",
                              **kw}).as_dict()


def _tables(runs: dict[str, tuple], examples: int = 2000, start: float = 0.30) -> dict[str, pd.DataFrame]:
    """runs: name -> (spec, accuracy after (0-1), % unchanged); tables written by the study's own writers."""
    specs = {name: spec for name, (spec, _, _) in runs.items()}
    accuracy = {("addition", "base", "start"): start,
                **{("addition", "full", name): after for name, (_, after, _) in runs.items()}}
    diffs = {name: pd.DataFrame({"name": ["w"], "numel": [NUMEL], "unchanged_tol=1e-05": [round(pct * NUMEL / 100)],
                                 "unchanged_bf16_bitwise": [0], "unchanged_exact": [0]})
             for name, (_, _, pct) in runs.items()}
    sparsity = sparsity_table(specs, diffs, accuracy, {}, examples=dict.fromkeys(accuracy, examples))
    return {"sparsity": sparsity, "frontier": frontier_table(specs, sparsity, CRITERION)}


#: SFT at two lrs x two seeds: gains +10 and +30 points (per-lr means), sparsity 40% and 20%.
SFT = {"sft-lo-s1": (_spec("sft-lo-s1", "sft", 1e-5), 0.39, 41.0), "sft-lo-s2": (_spec("sft-lo-s2", "sft", 1e-5, 2), 0.41, 39.0),
       "sft-hi-s1": (_spec("sft-hi-s1", "sft", 1e-4), 0.60, 20.0)}


def test_the_sft_curve_averages_seeds_per_lr_and_interpolates_linearly():
    frontier = _tables(SFT)["frontier"]
    curve = sft_curve(frontier[~frontier["rl"]])
    assert curve["gain"].tolist() == pytest.approx([10.0, 30.0]) and curve["sparsity"].tolist() == pytest.approx([40.0, 20.0])
    assert interpolated(curve, 20.0) == pytest.approx(30.0)
    assert math.isnan(interpolated(curve, 35.0))  # never extrapolated


def test_an_rl_run_is_compared_with_sft_at_its_own_gain():
    """GRPO at +20 points (SFT there: 30%) with 50% unchanged is sparser; at 25% it is denser; a gain's noise
    of 2 x 1.6 points spans SFT 26.8-33.2%, so 31% is within it."""
    runs = {**SFT, "grpo-a": (_spec("grpo-a", "grpo", 1e-5), 0.50, 50.0), "grpo-b": (_spec("grpo-b", "grpo", 3e-5), 0.50, 25.0),
            "grpo-c": (_spec("grpo-c", "grpo", 1e-4), 0.50, 31.0)}
    frontier = _tables(runs)["frontier"].set_index("run")
    assert frontier.loc["grpo-a", "sft_sparsity_at_gain"] == pytest.approx(30.0)
    se = frontier.loc["grpo-a", "gain_se"]
    assert se == pytest.approx(100 * math.hypot((0.3 * 0.7 / 2000) ** 0.5, (0.5 * 0.5 / 2000) ** 0.5))
    assert frontier.loc["grpo-a", ["sft_sparsity_low", "sft_sparsity_high"]].tolist() == pytest.approx([30 - 2 * se, 30 + 2 * se])
    assert frontier.loc[["grpo-a", "grpo-b", "grpo-c"], "versus_sft"].tolist() == [SPARSER, DENSER, WITHIN]
    assert frontier.loc["grpo-a", "sft_between"] == "sft-lo-s1+sft-lo-s2 +10.0 .. sft-hi-s1 +30.0"
    finding = compute_findings(_tables(runs), CRITERION).set_index("claim").loc["matched-gain"]
    assert finding["verdict"] == FAILS
    assert "1/3 RL runs sparser than SFT at their gain" in finding["evidence"] and "within noise" in finding["evidence"]


def test_runs_that_did_not_learn_or_lie_outside_the_sft_gains_are_set_aside():
    runs = {**SFT, "grpo-flat": (_spec("grpo-flat", "grpo", 1e-6), 0.30, 99.0),
            "grpo-far": (_spec("grpo-far", "grpo", 1e-3), 0.80, 99.0),
            "grpo-ok": (_spec("grpo-ok", "grpo", 1e-5), 0.50, 50.0)}
    tables = _tables(runs)
    frontier = tables["frontier"].set_index("run")
    assert frontier.loc["grpo-flat", "versus_sft"] == NOT_LEARNED and frontier.loc["grpo-far", "versus_sft"] == OUTSIDE
    finding = compute_findings(tables, CRITERION).set_index("claim").loc["matched-gain"]
    assert finding["verdict"] == HOLDS  # decided on grpo-ok alone; the others are named, not counted
    assert "set aside: grpo-flat (did not learn); grpo-far (outside the SFT gains)" in finding["evidence"]
    del runs["grpo-ok"]
    assert compute_findings(_tables(runs), CRITERION).set_index("claim").loc["matched-gain", "verdict"] == NOT_MEASURED


def test_runs_of_another_precision_stand_on_another_frontier():
    """A bf16 GRPO run is not compared with fp32 SFT runs: its group has no SFT run."""
    runs = {**SFT, "grpo-bf16": (_spec("grpo-bf16", "grpo", 1e-5, precision="bf16"), 0.50, 90.0)}
    frontier = _tables(runs)["frontier"].set_index("run")
    assert frontier.loc["grpo-bf16", "versus_sft"] == "no SFT run"
    assert frontier["group"].nunique() == 2
    assert compute_findings(_tables(runs), CRITERION).set_index("claim").loc["matched-gain", "verdict"] == NOT_MEASURED


def test_the_threshold_applies_to_the_noise_band():
    """grpo-a is 20 points above SFT's 30% (band ±3.2): it holds with margin 15, not with margin 20."""
    tables = _tables({**SFT, "grpo-a": (_spec("grpo-a", "grpo", 1e-5), 0.50, 50.0)})
    verdict = lambda t: compute_findings(tables, CRITERION, {"matched-gain": t}).set_index("claim").loc["matched-gain", "verdict"]  # noqa: E731
    assert (verdict(15.0), verdict(20.0)) == (HOLDS, FAILS)


def test_the_figure_fills_compared_rl_runs_and_leaves_set_aside_ones_hollow():
    import matplotlib.colors as mcolors

    from subnet_rl.figures.frontier import frontier_scatter

    runs = {**SFT, "grpo-ok": (_spec("grpo-ok", "grpo", 1e-5), 0.50, 50.0),
            "grpo-far": (_spec("grpo-far", "grpo", 1e-3), 0.80, 99.0)}
    fig = frontier_scatter(_tables(runs), sorted(runs))
    faces = {bars.get_label(): mcolors.to_hex(bars.lines[0].get_markerfacecolor())  # errorbar: (data line, ...)
             for ax in fig.axes for bars in ax.containers if bars.get_label().startswith("grpo")}
    assert faces["grpo-far (grpo)"] == "#ffffff" and faces["grpo-ok (grpo)"] != "#ffffff"
    assert frontier_scatter({}, []) is None  # no frontier table: the placeholder's case
