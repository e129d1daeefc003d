"""Matched comparisons between runs: the paper's ablations, found in the config rather than declared.

Two runs form a matched comparison over a setting ("knob") when they are identical in every other
training setting (algorithm, lr, steps, seed, data, start model, ...); their name, regime label, subnetwork
flag and snapshot interval do not count. So `precision` compares fp32 with bf16 weights, `kl_beta` KL on
with off, `max_grad_norm` clipping on with off, `pairs` on- with off-policy preference data, for whatever
runs a config holds, and a comparison that is not matched does not appear.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

#: run settings that label a run rather than change its training.
NOT_TRAINING = frozenset({"name", "regime", "subnetwork", "save_every", "save_steps", "report_to",
                          "sharding"})
#: knob -> the ablation it is (paper section 6; `precision` and `pairs` go beyond it: bf16 rounding, Table 5).
KNOBS = {"precision": "fp32 vs bf16 weights", "kl_beta": "KL penalty", "max_grad_norm": "gradient clipping",
         "pairs": "on- vs off-policy preference data"}


def matched_groups(specs: dict[str, dict[str, Any]], knob: str) -> list[list[str]]:
    """Groups (sorted run names) of runs equal in every training setting but `knob`, holding 2+ of its values."""
    groups: dict[tuple, list[str]] = {}
    for name, spec in specs.items():
        key = tuple(sorted((k, repr(v)) for k, v in spec.items() if k not in NOT_TRAINING | {knob}))
        groups.setdefault(key, []).append(name)
    return [sorted(runs) for runs in groups.values() if len({repr(specs[r][knob]) for r in runs}) > 1]


def _run_rows(sparsity: pd.DataFrame, criterion: str) -> dict[str, dict]:
    column = f"sparsity {criterion}"
    if sparsity.empty or column not in sparsity:
        return {}
    return {run: {**row, "sparsity": row[column]} for run, row in sparsity.set_index("run").to_dict("index").items()}


def ablation_table(specs: dict[str, dict], sparsity: pd.DataFrame, criterion: str,
                   knobs: tuple[str, ...] = ("kl_beta", "max_grad_norm")) -> pd.DataFrame:
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
                            "accuracy_before": row.get("accuracy_before"), "accuracy_after": row.get("accuracy_after")})
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
                        "accuracy_after": row.get("accuracy_after")})
    table = pd.DataFrame(out)
    return table.sort_values(["algorithm", "lr", "precision"], ignore_index=True) if not table.empty else table


def data_table(specs: dict[str, dict], sparsity: pd.DataFrame, criterion: str,
               likelihoods: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """Paper Table 5: the same offline algorithm on on- and off-policy pairs, with how likely each side of
    the pairs is under the start model (mean per-token log-likelihood; `likelihoods` per run)."""
    rows = _run_rows(sparsity, criterion)
    out = []
    for group in matched_groups(specs, "pairs"):
        for run in group:
            row, spec = rows.get(run, {}), specs[run]
            chosen, rejected = likelihoods.get(run, (float("nan"), float("nan")))
            out.append({"run": run, "algorithm": spec["algorithm"], "pairs": spec["pairs"], "lr": spec["lr"],
                        "steps": spec["steps"], "chosen_logp": chosen, "rejected_logp": rejected,
                        "sparsity": row.get("sparsity"), "accuracy_before": row.get("accuracy_before"),
                        "accuracy_after": row.get("accuracy_after")})
    return pd.DataFrame(out)


def algorithms_table(sparsity: pd.DataFrame, criterion: str) -> pd.DataFrame:
    """The gain and sparsity of each algorithm per regime and learning rate: mean over its runs (seeds,
    precisions); a regime that sweeps the lr gets a row per lr."""
    column = f"sparsity {criterion}"
    runs = sparsity[sparsity["regime"] != "warmup"] if not sparsity.empty else sparsity
    if runs.empty or column not in runs:
        return pd.DataFrame()
    grouped = runs.assign(gain=runs["accuracy_after"] - runs["accuracy_before"]).groupby(
        ["regime", "algorithm", "lr"], sort=True)
    return grouped.agg(runs=("run", "count"), steps=("steps", "first"),
                       accuracy_start=("accuracy_before", "mean"), accuracy_full=("accuracy_after", "mean"),
                       gain=("gain", "mean"), gain_min=("gain", "min"), sparsity=(column, "mean")).reset_index()
