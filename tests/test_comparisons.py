"""Matched comparisons found in the config: which runs form a group, and the tables built from them.

Specs are real `RunSpec.as_dict()` records (every training setting present, as the workflow passes them);
the sparsity table is hand-made, so every expected value below is read off the inputs, not recomputed.
"""

import math

import pandas as pd
import pytest

from subnet_rl.comparisons import ablation_table, algorithms_table, data_table, matched_groups, precision_table
from subnet_rl.config import RunSpec

CRITERION = "tol=1e-05"


def spec(name: str, algorithm: str = "grpo", lr: float = 1e-3, **kw) -> dict:
    return RunSpec(name=name, algorithm=algorithm, lr=lr, steps=10, seed=1, dataset="addition", **kw).as_dict()


def specs_of(*runs: dict) -> dict[str, dict]:
    return {run["name"]: run for run in runs}


def sparsity_table(rows: list[tuple]) -> pd.DataFrame:
    """rows: (run, algorithm, regime, lr, precision, seed, accuracy_before, accuracy_after, tol, exact, bitwise)."""
    columns = ["run", "algorithm", "regime", "lr", "precision", "seed", "accuracy_before", "accuracy_after",
               f"sparsity {CRITERION}", "sparsity exact", "sparsity bf16_bitwise"]
    df = pd.DataFrame(rows, columns=columns)
    return df.assign(steps=10)[["run", "algorithm", "regime", "lr", "steps", *columns[4:]]]


# --- matched_groups ---------------------------------------------------------------------------------

def test_runs_differing_only_in_precision_form_a_group():
    """Name, regime, subnetwork and save_every label a run: they do not break a match. A run that
    also differs in lr is in no group; runs sharing one precision value are no comparison."""
    specs = specs_of(
        spec("sft-fp32", "sft", regime="learning"),
        spec("sft-bf16", "sft", precision="bf16", regime="other", subnetwork=True, save_every=5),
        spec("sft-bf16-lr", "sft", lr=2e-3, precision="bf16"),
        spec("grpo-a"), spec("grpo-b", regime="saturated"),  # same precision: one value, no group
    )
    assert matched_groups(specs, "precision") == [["sft-bf16", "sft-fp32"]]
    assert matched_groups(specs, "lr") == [["sft-bf16", "sft-bf16-lr"]]
    assert matched_groups(specs, "kl_beta") == []  # kl_beta 0 everywhere


def test_a_training_setting_other_than_the_knob_breaks_the_match():
    """seed, steps and data are training settings: a run differing in one of them matches nothing."""
    base = spec("a")
    specs = specs_of(base, spec("b", kl_beta=0.04),
                     {**spec("c", kl_beta=0.04), "seed": 2}, {**spec("d", kl_beta=0.04), "steps": 20},
                     {**spec("e", kl_beta=0.04), "dataset": "gsm8k"})
    assert matched_groups(specs, "kl_beta") == [["a", "b"]]


def test_groups_may_hold_more_than_two_runs():
    specs = specs_of(spec("k0"), spec("k1", kl_beta=0.01), spec("k2", kl_beta=0.1), spec("k0-again", regime="x"))
    assert matched_groups(specs, "kl_beta") == [["k0", "k0-again", "k1", "k2"]]


# --- precision_table --------------------------------------------------------------------------------

def test_precision_table_pairs_fp32_with_bf16_and_reads_the_criterion_column():
    specs = specs_of(spec("g32"), spec("g16", precision="bf16"),
                     spec("s32", "sft", lr=1e-4), spec("s16", "sft", lr=1e-4, precision="bf16"),
                     spec("lonely", "dpo", precision="bf16"))
    sparsity = sparsity_table([
        ("g32", "grpo", "learning", 1e-3, "fp32", 1, 0.3, 0.5, 70.0, 10.0, 60.0),
        ("g16", "grpo", "learning", 1e-3, "bf16", 1, 0.3, 0.4, 90.0, 90.0, 90.0),
        ("s32", "sft", "learning", 1e-4, "fp32", 1, 0.3, 0.6, 20.0, 1.0, 15.0),
        ("lonely", "dpo", "learning", 1e-3, "bf16", 1, 0.3, 0.6, 95.0, 95.0, 95.0),
    ])  # s16 has no sparsity row yet: its values are missing, the row is still there
    table = precision_table(specs, sparsity, CRITERION)
    assert table["run"].tolist() == ["g16", "g32", "s16", "s32"]  # by algorithm, lr, precision (bf16 < fp32)
    assert table["precision"].tolist() == ["bf16", "fp32", "bf16", "fp32"]
    assert table["sparsity"].tolist()[:2] == [90.0, 70.0] and table["sparsity"].iloc[3] == 20.0
    assert table["sparsity exact"].tolist()[:2] == [90.0, 10.0]
    assert table["sparsity bf16_bitwise"].tolist()[:2] == [90.0, 60.0]
    assert table["accuracy_after"].tolist()[:2] == [0.4, 0.5]
    assert table.loc[2, ["sparsity", "accuracy_after"]].isna().all()
    assert precision_table(specs, sparsity, "exact")["sparsity"].tolist()[:2] == [90.0, 10.0]


def test_precision_table_without_matches_is_empty():
    specs = specs_of(spec("only"))
    assert precision_table(specs, sparsity_table([]), CRITERION).empty


# --- ablation_table ---------------------------------------------------------------------------------

def test_ablation_table_rows_per_knob_and_group():
    """base/kl differ in kl_beta only, base/noclip in max_grad_norm only; the precision pair is no
    ablation of either knob."""
    specs = specs_of(spec("base"), spec("kl", kl_beta=0.04), spec("noclip", max_grad_norm=0.0),
                     spec("p32", "sft"), spec("p16", "sft", precision="bf16"))
    sparsity = sparsity_table([
        ("base", "grpo", "learning", 1e-3, "fp32", 1, 0.3, 0.5, 80.0, 5.0, 70.0),
        ("kl", "grpo", "learning", 1e-3, "fp32", 1, 0.3, 0.45, 82.0, 6.0, 71.0),
        ("noclip", "grpo", "learning", 1e-3, "fp32", 1, 0.3, 0.55, 60.0, 4.0, 50.0),
    ])
    table = ablation_table(specs, sparsity, CRITERION)
    got = table[["ablation", "knob", "group", "run", "value", "sparsity", "sparsity exact", "accuracy_after"]]
    assert got.values.tolist() == [
        ["KL penalty", "kl_beta", 1, "base", 0.0, 80.0, 5.0, 0.5],
        ["KL penalty", "kl_beta", 1, "kl", 0.04, 82.0, 6.0, 0.45],
        ["gradient clipping", "max_grad_norm", 1, "base", 1.0, 80.0, 5.0, 0.5],
        ["gradient clipping", "max_grad_norm", 1, "noclip", 0.0, 60.0, 4.0, 0.55],
    ]
    assert set(table["algorithm"]) == {"grpo"} and set(table["accuracy_before"]) == {0.3}
    assert ablation_table(specs, sparsity, CRITERION, knobs=("precision",))["run"].tolist() == ["p16", "p32"]


# --- data_table -------------------------------------------------------------------------------------

def test_data_table_matches_on_and_off_policy_runs_with_their_likelihoods():
    specs = specs_of(spec("on", "dpo"), spec("off", "dpo", pairs="off_policy"),
                     spec("off-other-lr", "dpo", lr=5e-4, pairs="off_policy"))
    sparsity = sparsity_table([
        ("on", "dpo", "learning", 1e-3, "fp32", 1, 0.3, 0.4, 95.0, 90.0, 94.0),
        ("off", "dpo", "learning", 1e-3, "fp32", 1, 0.3, 0.35, 70.0, 60.0, 68.0),
    ])
    table = data_table(specs, sparsity, CRITERION, {"on": (-0.2, -1.1), "off-other-lr": (-5.0, -6.0)})
    assert table["run"].tolist() == ["off", "on"]
    assert table["pairs"].tolist() == ["off_policy", "on_policy"]
    assert table["sparsity"].tolist() == [70.0, 95.0]
    assert table["accuracy_after"].tolist() == [0.35, 0.4]
    on = table.set_index("run").loc["on"]
    assert (on["chosen_logp"], on["rejected_logp"]) == (-0.2, -1.1)
    off = table.set_index("run").loc["off"]
    assert math.isnan(off["chosen_logp"]) and math.isnan(off["rejected_logp"])  # no likelihoods given


# --- algorithms_table -------------------------------------------------------------------------------

def algorithm_runs() -> pd.DataFrame:
    return sparsity_table([
        ("sft-from-init", "sft", "warmup", 3e-3, "fp32", 0, 0.0, 0.3, 1.0, 0.0, 1.0),
        ("grpo-s1", "grpo", "learning", 1e-3, "fp32", 1, 0.3, 0.5, 70.0, 10.0, 65.0),
        ("grpo-s2", "grpo", "learning", 1e-3, "bf16", 2, 0.3, 0.6, 80.0, 30.0, 75.0),
        ("dpo-s1", "dpo", "learning", 1e-3, "fp32", 1, 0.3, 0.35, 90.0, 50.0, 85.0),
        ("grpo-sat", "grpo", "saturated", 1e-4, "fp32", 1, 0.9, 0.95, 60.0, 20.0, 55.0),
        ("grpo-sat-lr", "grpo", "saturated", 1e-5, "fp32", 1, 0.9, 0.9, 95.0, 20.0, 55.0),
    ])


def test_algorithms_table_means_over_runs_and_leaves_out_the_warmup():
    """Gains: grpo learning 0.2 and 0.3 (mean 0.25, min 0.2), dpo 0.05, grpo saturated 0.05; the
    warmup run (an SFT from the random init) is not an algorithm under study."""
    table = algorithms_table(algorithm_runs(), CRITERION)
    assert table[["regime", "algorithm", "runs"]].values.tolist() == [
        ["learning", "dpo", 1], ["learning", "grpo", 2], ["saturated", "grpo", 1], ["saturated", "grpo", 1]]
    assert "sft" not in set(table["algorithm"])
    assert table["gain"].tolist() == pytest.approx([0.05, 0.25, 0.0, 0.05])
    assert table["gain_min"].tolist() == pytest.approx([0.05, 0.2, 0.0, 0.05])
    assert table["accuracy_start"].tolist() == pytest.approx([0.3, 0.3, 0.9, 0.9])
    assert table["accuracy_full"].tolist() == pytest.approx([0.35, 0.55, 0.9, 0.95])
    assert table["sparsity"].tolist() == pytest.approx([90.0, 75.0, 95.0, 60.0])
    # A regime that sweeps the lr has a row per lr (a mean over learning rates would mean nothing).
    assert table["lr"].tolist() == [1e-3, 1e-3, 1e-5, 1e-4] and table["steps"].tolist() == [10, 10, 10, 10]
    assert algorithms_table(algorithm_runs(), "exact")["sparsity"].tolist() == pytest.approx([50.0, 20.0, 20.0, 20.0])


def test_algorithms_table_without_the_criterion_or_runs_is_empty():
    assert algorithms_table(algorithm_runs(), "tol=1e-08").empty
    assert algorithms_table(pd.DataFrame(), CRITERION).empty
    assert algorithms_table(algorithm_runs().iloc[:1], CRITERION).empty  # the warmup alone
