"""Matched comparisons found in the config: which runs form a group, and the tables built from them.

Specs are real `RunSpec.as_dict()` records, as the workflow passes them; the sparsity table is hand-made
with the columns the tables stage writes (the controls tests use that stage's own writer), so every
expected value below is read off the inputs, not recomputed.
"""

import dataclasses
import math

import pandas as pd
import pytest

from subnet_rl import tables
from subnet_rl.algorithms import ALGORITHMS
from subnet_rl.comparisons import (ALGORITHM_SETTINGS, CONTROL_COLUMNS, ablation_table, algorithms_table,
                                   controls_table, data_table, is_matched, matched_controls, matched_groups,
                                   precision_table)
from subnet_rl.config import RunSpec, warmup_run

CRITERION = "tol=1e-05"


def spec(name: str, algorithm: str = "grpo", lr: float = 1e-3, **kw) -> dict:
    return RunSpec.from_dict({"name": name, "algorithm": algorithm, "lr": lr, "steps": 10, "seed": 1,
                              "dataset": "addition", **kw}).as_dict()


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
    """Name, regime, subnetwork, save_every and step_sparsity label a run or record it: they do not break a
    match. A run that also differs in lr is in no group; runs sharing one precision value are no comparison."""
    specs = specs_of(
        spec("sft-fp32", "sft", regime="learning"),
        spec("sft-bf16", "sft", precision="bf16", regime="other", subnetwork=True, save_every=5, step_sparsity=True),
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


def test_runs_without_the_knob_are_in_no_group():
    """A spec holding only its own algorithm's settings has no `pairs` when it reads no pairs: no group."""
    sft = {k: v for k, v in spec("sft", "sft").items() if k != "pairs"}
    specs = specs_of(sft, {**sft, "name": "sft-bf16", "precision": "bf16"}, spec("on", "dpo"),
                     spec("off", "dpo", pairs="off_policy"))
    assert matched_groups(specs, "pairs") == [["off", "on"]]
    assert matched_groups(specs, "precision") == [["sft", "sft-bf16"]]


# --- matched controls -------------------------------------------------------------------------------

def test_matched_means_equal_in_every_training_setting_both_runs_have():
    """A setting only one run has (its algorithm's own) is not compared; one both have and differ in is."""
    grpo, sft = spec("g"), {k: v for k, v in spec("s", "sft").items() if k != "max_length"}
    assert is_matched({**grpo, "max_length": 128}, sft, frozenset({"algorithm"}))
    assert not is_matched({**grpo, "max_length": 128}, {**sft, "max_length": 64}, frozenset({"algorithm"}))
    assert not is_matched(grpo, sft)  # the algorithm differs
    assert is_matched(grpo, {**grpo, "name": "other", "regime": "x", "save_every": 5})  # labels, not training
    assert is_matched(grpo, {**grpo, "step_sparsity": True})  # an observer, not training


def test_an_rl_runs_control_is_an_sft_run_matched_in_every_shared_setting():
    """Seed, data, lr and precision break a match; labels and the settings of one algorithm only (the
    preference beta, GRPO's sampling) do not. RL vs SFT is the algorithm registry's `is_rl`."""
    specs = specs_of(
        spec("grpo-a", num_generations=4, kl_beta=0.04), spec("dpo-a", "dpo", dpo_beta=0.3, pairs="off_policy"),
        spec("sft-a", "sft", regime="other", save_every=5),
        {**spec("sft-seed", "sft"), "seed": 2}, {**spec("sft-data", "sft"), "dataset": "gsm8k"},
        spec("sft-lr", "sft", lr=2e-3), spec("sft-bf16", "sft", precision="bf16"),
        spec("grpo-lonely", lr=5e-4),
    )
    assert matched_controls(specs) == [("dpo-a", "sft-a"), ("grpo-a", "sft-a")]
    assert matched_controls(specs_of(spec("g"), spec("d", "dpo"))) == []  # RL runs are no control


def test_algorithm_settings_are_the_registrys_and_no_shared_setting():
    """What an RL run may differ in from its control: its algorithm's own settings, as the registry's
    settings classes name them; never a setting every run has (that would let unequal training match)."""
    assert {"kl_beta", "num_generations", "temperature", "dpo_beta", "pairs", "simpo_gamma"} <= ALGORITHM_SETTINGS
    shared = {"lr", "steps", "seed", "dataset", "precision", "batch_size", "max_grad_norm", "max_length", "model"}
    assert ALGORITHM_SETTINGS.isdisjoint(shared)
    for algorithm in ALGORITHMS.values():
        assert {f.name for f in dataclasses.fields(algorithm.settings)} <= ALGORITHM_SETTINGS, algorithm.name


def _written_sparsity(specs: dict[str, dict], unchanged: dict[str, int], accuracy_after: dict[str, float]):
    """The sparsity table as the tables stage writes it (SFT from init among its rows): one-tensor diffs with
    `unchanged` of 100 entries at the criterion."""
    def diff(unchanged_entries: int) -> pd.DataFrame:
        return pd.DataFrame({"name": ["w"], "numel": [100], f"unchanged_{CRITERION}": [unchanged_entries],
                             "unchanged_exact": [0]})

    accuracy = {("", "base", "init"): 0.0, ("", "base", "start"): 0.3,
                **{("", "full", run): acc for run, acc in accuracy_after.items()}}
    warmup = warmup_run({"dataset": "", "lr": 1e-3, "steps": 10, "seed": 1}).as_dict()  # as tables.smk passes it
    return tables.sparsity_table({r: specs[r] for r in unchanged}, {r: diff(n) for r, n in unchanged.items()},
                                 accuracy, {}, warmup, diff(1))


def test_controls_table_pairs_each_rl_run_with_its_controls():
    """SFT from init has the lr and steps of `grpo-warm` and is SFT, but it is no run: it is no control."""
    specs = specs_of(spec("grpo-a", lr=2e-3), spec("dpo-a", "dpo", lr=2e-3), spec("sft-a", "sft", lr=2e-3),
                     spec("sft-b", "sft", lr=2e-3, regime="x"), spec("grpo-warm", lr=1e-3), spec("grpo-late", lr=5e-4))
    sparsity = _written_sparsity(specs, {"grpo-a": 90, "dpo-a": 60, "sft-a": 20, "grpo-warm": 5},
                                 {"grpo-a": 0.5, "dpo-a": 0.4, "sft-a": 0.45, "grpo-warm": 0.1})
    assert "sft-from-init" in set(sparsity["run"])
    table = controls_table(specs, sparsity, CRITERION)
    assert list(table.columns) == CONTROL_COLUMNS
    assert table[["run", "control"]].values.tolist() == [
        ["dpo-a", "sft-a"], ["dpo-a", "sft-b"], ["grpo-a", "sft-a"], ["grpo-a", "sft-b"]]
    a = table.set_index(["run", "control"]).loc[("grpo-a", "sft-a")]
    assert (a["sparsity"], a["control_sparsity"]) == pytest.approx((90.0, 20.0))
    assert (a["accuracy_after"], a["control_accuracy_after"]) == pytest.approx((50.0, 45.0))
    assert (a["algorithm"], a["lr"], a["steps"], a["precision"]) == ("grpo", 2e-3, 10, "fp32")
    b = table.set_index(["run", "control"]).loc[("dpo-a", "sft-b")]  # sft-b has no sparsity row yet
    assert b["sparsity"] == pytest.approx(60.0) and math.isnan(b["control_sparsity"])
    assert controls_table(specs, sparsity, "tol=1e-08")["sparsity"].isna().all()  # criterion not measured


def test_controls_table_without_matches_is_empty_with_its_columns():
    table = controls_table(specs_of(spec("g"), spec("s", "sft", lr=1e-4)), sparsity_table([]), CRITERION)
    assert table.empty and list(table.columns) == CONTROL_COLUMNS


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


def test_the_ablation_table_compares_adamw_with_sgd_by_default():
    """Runs differing only in the optimizer are an ablation of the default table (the workflow's); an SGD run
    that also differs in lr is none, and an SGD RL run is not the control of an AdamW SFT run."""
    specs = specs_of(spec("adam"), spec("sgd", optimizer="sgd"), spec("sgd-lr", lr=1e-1, optimizer="sgd"),
                     spec("sft-adam", "sft"))
    sparsity = sparsity_table([("adam", "grpo", "learning", 1e-3, "fp32", 1, 0.3, 0.5, 80.0, 5.0, 70.0),
                               ("sgd", "grpo", "learning", 1e-3, "fp32", 1, 0.3, 0.31, 99.0, 98.0, 99.5)])
    table = ablation_table(specs, sparsity, CRITERION)
    assert table[["ablation", "knob", "group", "run", "value", "sparsity", "accuracy_after"]].values.tolist() == [
        ["AdamW vs SGD", "optimizer", 1, "adam", "adamw", 80.0, 0.5],
        ["AdamW vs SGD", "optimizer", 1, "sgd", "sgd", 99.0, 0.31],
    ]
    assert matched_controls(specs) == [("adam", "sft-adam")]


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


def test_algorithms_table_gives_the_spread_over_seeds_and_the_accuracies_errors():
    """Two seeds of one setting: gain 0.2 and 0.3 (std 0.0707), sparsity 70 and 80 (std 7.07). A row with one
    seed, or whose runs differ in precision too (fp32 vs bf16 is no seed spread), has NaN; the accuracies'
    standard errors are the mean of the runs' own."""
    runs = sparsity_table([
        ("grpo-s1", "grpo", "learning", 1e-3, "fp32", 1, 0.3, 0.5, 70.0, 10.0, 65.0),
        ("grpo-s2", "grpo", "learning", 1e-3, "fp32", 2, 0.3, 0.6, 80.0, 30.0, 75.0),
        ("dpo-s1", "dpo", "learning", 1e-3, "fp32", 1, 0.3, 0.35, 90.0, 50.0, 85.0),
        ("sft-32", "sft", "precision", 1e-3, "fp32", 1, 0.3, 0.5, 20.0, 1.0, 15.0),
        ("sft-16", "sft", "precision", 1e-3, "bf16", 2, 0.3, 0.4, 60.0, 60.0, 60.0),
    ]).assign(accuracy_before_se=3.0, accuracy_after_se=[3.0, 5.0, 4.0, 2.0, 2.0])
    table = algorithms_table(runs, CRITERION).set_index(["regime", "algorithm"])
    grpo = table.loc[("learning", "grpo")]
    assert (grpo["runs"], grpo["seeds"]) == (2, 2)
    assert (grpo["gain"], grpo["gain_std"]) == pytest.approx((0.25, 0.1 / math.sqrt(2)))
    assert (grpo["sparsity"], grpo["sparsity_std"]) == pytest.approx((75.0, 10 / math.sqrt(2)))
    assert (grpo["accuracy_start_se"], grpo["accuracy_full_se"]) == pytest.approx((3.0, 4.0))
    assert table.loc[("learning", "dpo"), ["gain_std", "sparsity_std"]].isna().all()  # one seed
    assert table.loc[("precision", "sft"), ["gain_std", "sparsity_std"]].isna().all()  # two precisions
    columns = list(table.columns)
    for mean, spread in (("accuracy_start", "accuracy_start_se"), ("accuracy_full", "accuracy_full_se"),
                         ("gain", "gain_std"), ("sparsity", "sparsity_std")):
        assert columns.index(spread) == columns.index(mean) + 1


def test_runs_repeating_a_seed_are_no_seed_spread():
    """Two seed-1 runs of one setting in the table differ in a knob it does not show (KL, clipping)."""
    runs = sparsity_table([("grpo-kl", "grpo", "ablation", 1e-3, "fp32", 1, 0.3, 0.5, 70.0, 10.0, 65.0),
                           ("grpo-noclip", "grpo", "ablation", 1e-3, "fp32", 1, 0.3, 0.6, 80.0, 30.0, 75.0)])
    row = algorithms_table(runs, CRITERION).iloc[0]
    assert row["runs"] == 2 and math.isnan(row["gain_std"]) and math.isnan(row["sparsity_std"])
    assert math.isnan(row["accuracy_full_se"])  # a table without errors: not measured


def test_comparison_tables_carry_each_accuracys_standard_error():
    """The sparsity table's errors travel with their accuracies into the controls, ablations, precision and
    data tables, beside them."""
    specs = specs_of(spec("g"), spec("g16", precision="bf16"), spec("s", "sft"), spec("kl", kl_beta=0.04),
                     spec("on", "dpo"), spec("off", "dpo", pairs="off_policy"))
    rows = [(r, specs[r]["algorithm"], "learning", 1e-3, specs[r]["precision"], 1, 0.3, acc, 80.0, 5.0, 70.0)
            for r, acc in (("g", 0.5), ("g16", 0.4), ("s", 0.45), ("kl", 0.55), ("on", 0.35), ("off", 0.3))]
    errors = {"g": 3.5, "g16": 3.4, "s": 3.45, "kl": 3.3, "on": 3.2, "off": 3.1}
    sparsity = sparsity_table(rows).assign(accuracy_before_se=3.24,
                                           accuracy_after_se=lambda df: df["run"].map(errors))
    control = controls_table(specs, sparsity, CRITERION).set_index(["run", "control"]).loc[("g", "s")]
    assert (control["accuracy_after_se"], control["control_accuracy_after_se"]) == (3.5, 3.45)
    ablation = ablation_table(specs, sparsity, CRITERION, knobs=("kl_beta",)).set_index("run")
    assert ablation.loc["kl", ["accuracy_before_se", "accuracy_after_se"]].tolist() == [3.24, 3.3]
    precision = precision_table(specs, sparsity, CRITERION).set_index("run")
    assert precision.loc["g16", "accuracy_after_se"] == 3.4
    data = data_table(specs, sparsity, CRITERION, {}).set_index("run")
    assert data.loc["off", ["accuracy_before_se", "accuracy_after_se"]].tolist() == [3.24, 3.1]
    for table in (ablation, precision, data):
        columns = list(table.columns)
        assert columns.index("accuracy_after_se") == columns.index("accuracy_after") + 1
    assert math.isnan(precision_table(specs, sparsity_table(rows), CRITERION)["accuracy_after_se"].iloc[0])


def test_with_the_specs_seed_replicates_match_in_every_training_setting():
    """grpo-a (seed 1) and grpo-kl (seed 2) share steps and precision, the sparsity table's columns, yet differ
    in kl_beta: given the specs, they are no seed spread; grpo-a and grpo-b (seeds 1, 2) are."""
    runs = sparsity_table([("grpo-a", "grpo", "learning", 1e-3, "fp32", 1, 0.3, 0.5, 70.0, 10.0, 65.0),
                           ("grpo-kl", "grpo", "learning", 1e-3, "fp32", 2, 0.3, 0.6, 90.0, 30.0, 75.0)])
    specs = specs_of(spec("grpo-a"), spec("grpo-kl", kl_beta=0.04, seed=2), spec("grpo-b", seed=2))
    assert algorithms_table(runs, CRITERION)["sparsity_std"].iloc[0] == pytest.approx(20 / math.sqrt(2))
    assert math.isnan(algorithms_table(runs, CRITERION, specs)["sparsity_std"].iloc[0])
    replicates = runs.assign(run=["grpo-a", "grpo-b"])
    assert algorithms_table(replicates, CRITERION, specs)["sparsity_std"].iloc[0] == pytest.approx(20 / math.sqrt(2))
