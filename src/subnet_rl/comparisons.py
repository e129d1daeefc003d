"""Matched comparisons between runs: the paper's ablations and controls, found in the config rather than declared.

Two runs are matched when they are identical in every training setting they both have (lr, steps, seed,
data, start model, ...) except the ones the comparison is about; their name, regime label, subnetwork
flag, snapshot interval and what is recorded of them (`NOT_TRAINING`) do not count. This module is the one
definition of it, for both kinds of comparison the study makes:

- over a setting ("knob", same algorithm): `precision` compares fp32 with bf16 weights, `kl_beta` KL on
  with off, `max_grad_norm` clipping on with off, `optimizer` AdamW with SGD, `pairs` on- with off-policy
  preference data;
- an RL run and its SFT control (`controls_table`): the algorithm differs, and so may the settings that
  belong to one algorithm only (`ALGORITHM_SETTINGS`: an SFT run has no reward sampling or preference beta).

Whatever runs a config holds, a comparison that is not matched does not appear.
"""

from __future__ import annotations

import math
from dataclasses import fields
from itertools import product
from typing import Any

import pandas as pd

from .algorithms import ALGORITHMS, get_algorithm
from .outcomes import TARGET_COLUMNS

#: run settings that label a run rather than change its training.
NOT_TRAINING = frozenset({"name", "regime", "subnetwork", "save_every", "save_steps", "report_to",
                          "sharding", "step_sparsity"})
#: the settings that belong to one algorithm (or a few) rather than to every run: the fields of each
#: registered algorithm's own settings class (online sampling, preference losses and pairs), which an RL
#: run and its SFT control may differ in. A flat spec of every setting would hold them all, defaults
#: included; a spec of its shared settings and its algorithm's own (`RunSpec.as_dict()`) holds only its
#: own, and a setting one of the two runs lacks is not compared anyway.
ALGORITHM_SETTINGS = frozenset(f.name for algorithm in ALGORITHMS.values() for f in fields(algorithm.settings))
#: knob -> the ablation it is (paper section 6; `precision` and `pairs` go beyond it: bf16 rounding, Table 5;
#: `optimizer` asks whether sparsity is Adam's, as "Do We Need Adam?", arXiv 2602.07729, finds for SGD).
KNOBS = {"precision": "fp32 vs bf16 weights", "kl_beta": "KL penalty", "max_grad_norm": "gradient clipping",
         "optimizer": "AdamW vs SGD", "pairs": "on- vs off-policy preference data"}
#: the knobs of the ablations table (`precision` and `pairs` have tables of their own).
ABLATION_KNOBS = ("kl_beta", "max_grad_norm", "optimizer")


def training_settings(spec: dict[str, Any], besides: frozenset[str] = frozenset()) -> dict[str, str]:
    """The settings of a run that change its training, but `besides`, as text (repr), so that equal values
    compare equal whatever their container type."""
    return {k: repr(v) for k, v in spec.items() if k not in NOT_TRAINING | besides}


def is_matched(a: dict[str, Any], b: dict[str, Any], besides: frozenset[str] = frozenset()) -> bool:
    """Whether two runs are equal in every training setting both have, but `besides`."""
    settings_a, settings_b = training_settings(a, besides), training_settings(b, besides)
    return all(settings_a[k] == settings_b[k] for k in settings_a.keys() & settings_b.keys())


def matched_groups(specs: dict[str, dict[str, Any]], knob: str) -> list[list[str]]:
    """Groups (sorted run names) of runs matched but in `knob`, holding 2+ of its values (runs without it
    are in none)."""
    groups: dict[tuple, list[str]] = {}
    for name, spec in specs.items():
        if knob in spec:
            key = tuple(sorted(training_settings(spec, frozenset({knob})).items()))
            groups.setdefault(key, []).append(name)
    return [sorted(runs) for runs in groups.values() if len({repr(specs[r][knob]) for r in runs}) > 1]


#: what an RL run and its SFT control may differ in.
CONTROL_DIFFERENCES = frozenset({"algorithm"}) | ALGORITHM_SETTINGS


def matched_controls(specs: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """(RL run, SFT control) pairs: an SFT run matched with the RL run in every training setting but the
    algorithm's own, in the sparsity table's order (regime, algorithm, run). RL is what the algorithm
    registry says (`Algorithm.is_rl`). Only runs count: SFT from random init (the warmup) starts elsewhere
    and is no run, so it is no control."""
    order = sorted(specs, key=lambda r: (specs[r].get("regime", ""), specs[r]["algorithm"], r))
    rl = [name for name in order if get_algorithm(specs[name]["algorithm"]).is_rl]
    sft = [name for name in order if not get_algorithm(specs[name]["algorithm"]).is_rl]
    return [(run, control) for run, control in product(rl, sft)
            if is_matched(specs[run], specs[control], CONTROL_DIFFERENCES)]


def _run_rows(sparsity: pd.DataFrame, criterion: str) -> dict[str, dict]:
    column = f"sparsity {criterion}"
    if sparsity.empty or column not in sparsity:
        return {}
    return {run: {**row, "sparsity": row[column]} for run, row in sparsity.set_index("run").to_dict("index").items()}


def _accuracies(row: dict, *columns: str, prefix: str = "") -> dict[str, Any]:
    """Each accuracy column of a sparsity-table row and, beside it, its standard error (`<column>_se`, points;
    NaN when the table has none), named `<prefix><column>`."""
    return {k: v for c in columns
            for k, v in ((prefix + c, row.get(c)), (f"{prefix}{c}_se", row.get(f"{c}_se", math.nan)))}


def ablation_table(specs: dict[str, dict], sparsity: pd.DataFrame, criterion: str,
                   knobs: tuple[str, ...] = ABLATION_KNOBS) -> pd.DataFrame:
    """One row per run of each matched comparison: the knob, its value, sparsity and accuracy."""
    rows = _run_rows(sparsity, criterion)
    out = []
    for knob in knobs:
        for number, group in enumerate(matched_groups(specs, knob), start=1):
            for run in group:
                row, spec = rows.get(run, {}), specs[run]
                out.append({"ablation": KNOBS[knob], "knob": knob, "group": number, "run": run,
                            "value": spec[knob], "algorithm": spec["algorithm"], "lr": spec["lr"],
                            "steps": spec["steps"], "sparsity": row.get("sparsity"),
                            "sparsity exact": row.get("sparsity exact"),
                            **_accuracies(row, "accuracy_before", "accuracy_after"), "outcome": row.get("outcome")})
    return pd.DataFrame(out)


def precision_table(specs: dict[str, dict], sparsity: pd.DataFrame, criterion: str) -> pd.DataFrame:
    """Runs that differ only in the weights' precision, by algorithm and lr: is sparsity bf16 rounding?"""
    rows = _run_rows(sparsity, criterion)
    out = []
    for group in matched_groups(specs, "precision"):
        for run in group:
            row, spec = rows.get(run, {}), specs[run]
            out.append({"algorithm": spec["algorithm"], "lr": spec["lr"], "precision": spec["precision"], "run": run,
                        "steps": spec["steps"], "sparsity": row.get("sparsity"),
                        "sparsity exact": row.get("sparsity exact"),
                        "sparsity bf16_bitwise": row.get("sparsity bf16_bitwise"),
                        **_accuracies(row, "accuracy_before", "accuracy_after"), "outcome": row.get("outcome")})
    table = pd.DataFrame(out)
    return table.sort_values(["algorithm", "lr", "precision"], ignore_index=True) if not table.empty else table


def data_table(specs: dict[str, dict], sparsity: pd.DataFrame, criterion: str,
               likelihoods: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """Paper Table 5: the same offline algorithm on on- and off-policy pairs, with how likely each side of
    the pairs is under the start model (mean per-token log-likelihood; `likelihoods` per run), each arm's
    accuracy and outcome, and an off-policy arm's accuracy on the answer form its pairs teach (`target_*`): an
    arm at 0% on the task may have learned that form, not nothing."""
    rows = _run_rows(sparsity, criterion)
    out = []
    for group in matched_groups(specs, "pairs"):
        for run in group:
            row, spec = rows.get(run, {}), specs[run]
            chosen, rejected = likelihoods.get(run, (float("nan"), float("nan")))
            out.append({"run": run, "algorithm": spec["algorithm"], "pairs": spec["pairs"], "lr": spec["lr"],
                        "steps": spec["steps"], "chosen_logp": chosen, "rejected_logp": rejected,
                        "sparsity": row.get("sparsity"), **_accuracies(row, "accuracy_before", "accuracy_after"),
                        **{c: row.get(c, math.nan) for c in TARGET_COLUMNS}, "outcome": row.get("outcome")})
    return pd.DataFrame(out)


CONTROL_COLUMNS = ["run", "control", "algorithm", "regime", "lr", "steps", "precision", "sparsity",
                   "control_sparsity", "accuracy_before", "accuracy_before_se", "accuracy_after",
                   "accuracy_after_se", "outcome", "control_accuracy_after", "control_accuracy_after_se",
                   "control_outcome"]


def controls_table(specs: dict[str, dict], sparsity: pd.DataFrame, criterion: str) -> pd.DataFrame:
    """One row per RL run and matched SFT control: both sparsities at `criterion`, the shared start's accuracy
    and both accuracies after training (with their standard errors), and what each arm learned (`outcomes`):
    the comparison behind "an RL run is sparser than its SFT control", which means little when an arm lost
    accuracy."""
    rows = _run_rows(sparsity, criterion)
    out = []
    for run, control in matched_controls(specs):
        spec, row, control_row = specs[run], rows.get(run, {}), rows.get(control, {})
        out.append({"run": run, "control": control, **{c: spec.get(c) for c in CONTROL_COLUMNS[2:7]},
                    "sparsity": row.get("sparsity"), "control_sparsity": control_row.get("sparsity"),
                    **_accuracies(row, "accuracy_before", "accuracy_after"), "outcome": row.get("outcome"),
                    **_accuracies(control_row, "accuracy_after", prefix="control_"),
                    "control_outcome": control_row.get("outcome")})
    return pd.DataFrame(out, columns=CONTROL_COLUMNS)


#: the sparsity table's run settings that may differ between the runs of one algorithms-table row besides
#: their seed: runs differing in one of them are not replicates of one setting (without the runs' specs).
SEED_MATCHED = ("steps", "precision")
#: the column that, with the runs' specs, names each run's training settings but its seed.
SETTING = "_setting"


def seed_spread(values: pd.Series, runs: pd.DataFrame) -> float:
    """The std (ddof 1) of `values` over seeds, pooled over the settings of `runs`: every training setting but
    the seed where the runs' specs gave them (`SETTING`), else the sparsity table's `SEED_MATCHED` columns.
    The spread of replicates that differ in their seed alone, not the fp32-vs-bf16, steps or KL difference a
    row may also mix. A setting whose runs repeat a seed differs in something else and is left out. NaN
    without two seeds of one setting: one run measures no spread."""
    keys = [runs[c].astype(str) for c in ((SETTING,) if SETTING in runs else SEED_MATCHED) if c in runs]
    squares, dof = 0.0, 0
    for _, index in (values.groupby(keys).groups.items() if keys else [(None, values.index)]):
        setting, seeds = values.loc[index].dropna(), runs.loc[index, "seed"] if "seed" in runs else None
        if len(setting) < 2 or (seeds is not None and seeds.nunique() < len(seeds)):
            continue
        squares += float(((setting - setting.mean()) ** 2).sum())
        dof += len(setting) - 1
    return math.sqrt(squares / dof) if dof else math.nan


def algorithms_table(sparsity: pd.DataFrame, criterion: str, specs: dict[str, dict] | None = None) -> pd.DataFrame:
    """The gain and sparsity of each algorithm per regime and learning rate: mean over its runs (seeds,
    precisions); a regime that sweeps the lr gets a row per lr. Beside each mean: for an accuracy, the
    binomial standard error of one run's evaluation (mean over the runs; points), for gain and sparsity
    their spread over seeds (`seed_spread`, NaN with one seed; with the runs' `specs`, replicates match in
    every training setting but the seed), and `seeds` counts the seeds the row holds."""
    column = f"sparsity {criterion}"
    runs = sparsity[sparsity["regime"] != "warmup"] if not sparsity.empty else sparsity
    if runs.empty or column not in runs:
        return pd.DataFrame()
    if specs is not None:
        runs = runs.assign(**{SETTING: [repr(sorted(training_settings(specs[r], frozenset({"seed"})).items()))
                                        if r in specs else r for r in runs["run"]]})
    runs = runs.assign(gain=runs["accuracy_after"] - runs["accuracy_before"],
                       **{c: runs.get(c, math.nan) for c in ("accuracy_before_se", "accuracy_after_se")})
    grouped = runs.groupby(["regime", "algorithm", "lr"], sort=True)
    table = grouped.agg(runs=("run", "count"), steps=("steps", "first"),
                        accuracy_start=("accuracy_before", "mean"), accuracy_full=("accuracy_after", "mean"),
                        gain=("gain", "mean"), gain_min=("gain", "min"), sparsity=(column, "mean"),
                        accuracy_start_se=("accuracy_before_se", "mean"),
                        accuracy_full_se=("accuracy_after_se", "mean"))
    table["seeds"] = grouped["seed"].nunique() if "seed" in runs else math.nan
    # One value per group, by key: `groupby.apply` returns a frame instead of a series for some group shapes.
    by_group = {key: group for key, group in grouped}
    table["gain_std"] = [seed_spread(by_group[key]["gain"], by_group[key]) for key in table.index]
    table["sparsity_std"] = [seed_spread(by_group[key][column], by_group[key]) for key in table.index]
    order = ["runs", "seeds", "steps", "accuracy_start", "accuracy_start_se", "accuracy_full", "accuracy_full_se",
             "gain", "gain_std", "gain_min", "sparsity", "sparsity_std"]
    return table[order].reset_index()
