"""The sparsity-gain frontier: is RL sparser than SFT at the same accuracy gain?

Comparing RL with SFT at the same learning rate and steps (the `controls` table) asks how sparse each is for
the same optimizer budget. The paper compares checkpoints each trained to its own end, so the fairer
question is which algorithm buys the same gain with fewer changed entries. Every run is a point (gain,
sparsity); the SFT runs of a group, averaged over seeds per learning rate and steps, draw a curve of
sparsity against gain, and each RL run is compared with that curve interpolated at its own gain.

A group holds the runs whose sparsity and gain are comparable at all: the same start, training and test
data, weight precision, optimizer and weight decay (`FRONTIER_KEYS`); learning rate, steps, seed and
algorithm vary along the frontier. A gain has a binomial standard error (its two accuracies'); the RL run
is "sparser" only when it is sparser than the SFT curve everywhere within `NOISE_Z` errors of its gain. A
run that did not learn (`outcomes`: gain within noise of zero, or below) has no gain to match, and a gain
outside the SFT runs' range is not extrapolated: both are set aside and said so.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .algorithms import get_algorithm
from .outcomes import LEARNED
from .uncertainty import NOISE_Z, combined_standard_error

#: the run settings that must be equal for two runs to stand on one frontier.
FRONTIER_KEYS = ("model", "dataset", "eval_dataset", "precision", "optimizer", "weight_decay")
SPARSER, DENSER, WITHIN, OUTSIDE, NOT_LEARNED, NO_SFT = (
    "sparser", "denser", "within noise", "outside the SFT gains", "did not learn", "no SFT run")

COLUMNS = ["group", "run", "algorithm", "rl", "lr", "steps", "seed", "precision", "optimizer", "accuracy_before",
           "accuracy_after", "gain", "gain_se", "outcome", "sparsity", "sft_sparsity_at_gain", "sft_sparsity_low",
           "sft_sparsity_high", "sft_between", "versus_sft"]


def _group_label(spec: dict[str, Any]) -> str:
    """The group's settings, short: "start, arithmetic, fp32, adamw, wd 0" (", eval <dataset>" when it differs)."""
    data = spec.get("dataset") + ("" if spec.get("eval_dataset") in (None, spec.get("dataset"))
                                  else f" (eval {spec.get('eval_dataset')})")
    return (f"{spec.get('model')}, {data}, {spec.get('precision')}, {spec.get('optimizer')}, "
            f"wd {float(spec.get('weight_decay', 0.0)):g}")


def sft_curve(sft: pd.DataFrame) -> pd.DataFrame:
    """The SFT runs of a group as a curve: mean gain and sparsity over seeds per (lr, steps), sorted by gain,
    with the runs of each point."""
    points = sft.groupby(["lr", "steps"], sort=True).agg(gain=("gain", "mean"), sparsity=("sparsity", "mean"),
                                                        runs=("run", lambda r: "+".join(sorted(r))))
    return points.sort_values("gain", kind="stable").reset_index()


def interpolated(curve: pd.DataFrame, gain: float) -> float:
    """The curve's sparsity at `gain` (linear between its points); NaN outside its range of gains."""
    gains, values = curve["gain"].to_numpy(float), curve["sparsity"].to_numpy(float)
    if len(gains) == 0 or not gains[0] <= gain <= gains[-1]:
        return math.nan
    return float(np.interp(gain, gains, values))


def _between(curve: pd.DataFrame, gain: float) -> str:
    """The SFT points either side of `gain` (within the curve's range), as "<runs> +g1 .. <runs> +g2"."""
    gains = curve["gain"].to_numpy(float)
    after = int(np.searchsorted(gains, gain, side="right"))
    left, right = max(after - 1, 0), min(after, len(gains) - 1)
    ends = [left] if gains[left] == gain else [left, right]
    return " .. ".join(f"{curve.iloc[i]['runs']} {curve.iloc[i]['gain']:+.1f}" for i in ends)


def _range_over(curve: pd.DataFrame, low: float, high: float) -> tuple[float, float]:
    """The least and greatest sparsity of the curve over gains [low, high] (clipped to its range): at the
    interval's ends and at the curve's points inside it (it is linear between them)."""
    gains = curve["gain"].to_numpy(float)
    low, high = max(low, gains[0]), min(high, gains[-1])
    inside = curve.loc[(curve["gain"] > low) & (curve["gain"] < high), "sparsity"].tolist()
    values = [interpolated(curve, low), interpolated(curve, high), *inside]
    return min(values), max(values)


def versus_sft(row: dict[str, Any], curve: pd.DataFrame) -> dict[str, Any]:
    """An RL run against its group's SFT curve: the curve's sparsity at the run's gain, its range within the
    gain's noise, the SFT points either side, and whether the run is sparser than that whole range, denser,
    within it, or set aside. A claim's margin is applied by the claim (`findings`), not here."""
    empty = {"sft_sparsity_at_gain": math.nan, "sft_sparsity_low": math.nan, "sft_sparsity_high": math.nan,
             "sft_between": ""}
    if curve.empty:
        return {**empty, "versus_sft": NO_SFT}
    if row["outcome"] != LEARNED:
        return {**empty, "versus_sft": NOT_LEARNED}
    at = interpolated(curve, row["gain"])
    if math.isnan(at):
        return {**empty, "versus_sft": OUTSIDE}
    noise = NOISE_Z * row["gain_se"]
    low, high = _range_over(curve, row["gain"] - noise, row["gain"] + noise)
    verdict = SPARSER if row["sparsity"] > high else DENSER if row["sparsity"] < low else WITHIN
    return {"sft_sparsity_at_gain": at, "sft_sparsity_low": low, "sft_sparsity_high": high,
            "sft_between": _between(curve, row["gain"]), "versus_sft": verdict}


def frontier_table(specs: dict[str, dict], sparsity: pd.DataFrame, criterion: str) -> pd.DataFrame:
    """One row per run (the warmup aside): its group, gain in points with its standard error, outcome and
    sparsity under `criterion`; an RL run also its comparison with the SFT curve of its group (`versus_sft`)."""
    column = f"sparsity {criterion}"
    if sparsity.empty or column not in sparsity:
        return pd.DataFrame(columns=COLUMNS)
    rows = []
    for row in sparsity.to_dict("records"):
        spec = specs.get(row["run"])
        if spec is None:  # the warmup (SFT from init) is no run of the study
            continue
        error = combined_standard_error(row.get("accuracy_before_se", math.nan), row.get("accuracy_after_se", math.nan))
        rows.append({"group": _group_label(spec), "run": row["run"], "algorithm": spec["algorithm"],
                     "rl": get_algorithm(spec["algorithm"]).is_rl, "lr": spec["lr"], "steps": spec["steps"],
                     "seed": spec["seed"], "precision": spec["precision"], "optimizer": spec.get("optimizer"),
                     "accuracy_before": row["accuracy_before"], "accuracy_after": row["accuracy_after"],
                     "gain": row["accuracy_after"] - row["accuracy_before"], "gain_se": error,
                     "outcome": row.get("outcome", "not measured"), "sparsity": row[column]})
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=COLUMNS)
    out = []
    for _, group in table.groupby("group", sort=True):
        curve = sft_curve(group[~group["rl"]])
        for row in group.sort_values(["rl", "algorithm", "lr", "seed", "run"]).to_dict("records"):
            out.append({**row, **(versus_sft(row, curve) if row["rl"] else
                                  {"sft_sparsity_at_gain": math.nan, "sft_sparsity_low": math.nan,
                                   "sft_sparsity_high": math.nan, "sft_between": "", "versus_sft": ""})})
    return pd.DataFrame(out, columns=COLUMNS)
