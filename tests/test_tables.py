import pandas as pd
import pytest

from subnet_rl.tables import overlap_table, sparsity_table, subnetwork_table, write_table
from subnet_rl.config import warmup_run


def _diff(unchanged_tol, unchanged_exact, numel=100, unchanged_bitwise=None):
    """A one-tensor diff table with the columns the diff stage always writes (bf16 bitwise and exact)."""
    bitwise = unchanged_exact if unchanged_bitwise is None else unchanged_bitwise
    return pd.DataFrame({"name": ["w"], "numel": [numel], "unchanged_tol=1e-05": [unchanged_tol],
                         "unchanged_bf16_bitwise": [bitwise], "unchanged_exact": [unchanged_exact]})


_RUN = {"regime": "paper", "lr": 1e-6, "steps": 10, "seed": 1, "eval_dataset": "d", "model": "start"}
RUNS = {"g": {**_RUN, "algorithm": "grpo", "precision": "bf16"}, "s": {**_RUN, "algorithm": "sft", "precision": "fp32"}}
ACC = {("d", "base", "init"): 0.0, ("d", "base", "start"): 0.4, ("d", "full", "g"): 0.5, ("d", "full", "s"): 0.45,
       ("d", "subnet", "g"): 0.55}
GRPO_LOG = [{"loss": 0.1, "reward": 0.2, "frac_reward_zero_std": 0.5, "completions/clipped_ratio": 1.0, "step": 1},
            {"loss": 0.0, "reward": 0.6, "frac_reward_zero_std": 0.25, "completions/clipped_ratio": 0.5, "step": 2},
            {"train_runtime": 1.0}]
SFT_LOG = [{"loss": 2.0}, {"loss": 1.5}]


def test_sparsity_table_rows_and_percentages():
    table = sparsity_table(RUNS, {"g": _diff(90, 80), "s": _diff(20, 10)}, ACC, {"g": {"log_history": GRPO_LOG, "environment": {"deterministic": True}},
                            "s": {"log_history": SFT_LOG, "environment": {"deterministic": False}}},
                           warmup=warmup_run({"dataset": "d", "lr": 1e-3, "steps": 5}).as_dict(), warmup_diff=_diff(1, 0))
    assert list(table["run"]) == ["sft-from-init", "g", "s"]
    g = table.set_index("run").loc["g"]
    assert g["sparsity tol=1e-05"] == pytest.approx(90.0) and g["sparsity exact"] == pytest.approx(80.0)
    assert (g["accuracy_before"], g["accuracy_after"]) == pytest.approx((40.0, 50.0))
    # The learning signal of each run's trainer log: reward for RL, loss otherwise.
    assert (g["signal"], g["signal_start"], g["signal_end"]) == ("reward", 0.2, 0.6)
    assert g["zero_variance_groups"] == pytest.approx(0.375) and g["completions_clipped"] == pytest.approx(0.75)
    assert g["warning"] == ""
    s = table.set_index("run").loc["s"]
    assert (s["signal"], s["signal_start"], s["signal_end"]) == ("loss", 2.0, 1.5)
    assert (g["deterministic"], s["deterministic"]) == (True, False)


def test_a_run_that_learned_nothing_is_marked():
    dead_log = [{"loss": 0.0, "reward": 0.0, "frac_reward_zero_std": 1.0}] * 2
    table = sparsity_table(RUNS, {"g": _diff(100, 100), "s": _diff(20, 10)}, ACC, {"g": {"log_history": dead_log}, "s": {"log_history": SFT_LOG}})
    warnings = table.set_index("run")["warning"]
    assert "zero variance" in warnings["g"] and "all updates were zero" in warnings["g"]
    assert warnings["s"] == ""


def test_no_update_is_judged_in_the_runs_own_precision():
    """A bf16 run from an fp32 start stores bf16(start) even when nothing was learned: every entry differs
    from the fp32 start (exact), none from its bf16 value (bitwise). An fp32 run is judged exactly."""
    dead_log = [{"loss": 0.0, "reward": 0.0, "frac_reward_zero_std": 1.0}] * 2
    diffs = {"g": _diff(100, 0, unchanged_bitwise=100), "s": _diff(100, 50, unchanged_bitwise=100)}
    warnings = sparsity_table(RUNS, diffs, ACC, {"g": {"log_history": dead_log}, "s": {"log_history": SFT_LOG}}
                              ).set_index("run")["warning"]
    assert "all updates were zero" in warnings["g"]
    assert "all updates were zero" not in warnings["s"]


def test_subnetwork_table_uses_tolerance_columns_only():
    accuracy = {**ACC, ("d", "random", "g--same"): 0.35, ("d", "random", "g--0.01"): 0.42}
    table = subnetwork_table(RUNS, accuracy, {"g": _diff(95, 50)}, {"g": 0.1}, ["same", "0.01"])
    assert (table.loc[0, "accuracy_random_same"], table.loc[0, "accuracy_random_0.01"]) == pytest.approx((35.0, 42.0))
    row = table.iloc[0]
    assert row["subnetwork (% of entries)"] == pytest.approx(10.0)
    assert row["accuracy_subnetwork"] == pytest.approx(55.0) and row["equal tol=1e-05 (%)"] == pytest.approx(95.0)
    assert "equal exact (%)" not in table.columns


def test_write_table_formats_lr_and_keeps_csv_precise(tmp_path):
    table = sparsity_table(RUNS, {"g": _diff(90, 80), "s": _diff(20, 10)}, ACC, {})
    write_table(table, tmp_path / "t.md", tmp_path / "t.csv", "Title")
    assert "1e-06" in (tmp_path / "t.md").read_text()
    assert pd.read_csv(tmp_path / "t.csv")["lr"].iloc[0] == pytest.approx(1e-6)


def test_overlap_table_in_percent():
    pairs = pd.DataFrame([{"run_1": "a", "run_2": "b", "sparsity_1": 0.5, "sparsity_2": 0.25, "o1": 0.6,
                           "random_o1": 0.75, "o2": 0.4, "random_o2": 0.5, "jaccard": 0.3, "random_jaccard": 0.2}])
    assert overlap_table(pairs).iloc[0]["o1"] == pytest.approx(60.0)


def test_layer_sparsity_by_layer_and_module():
    from subnet_rl.layers import layer_sparsity

    diff = pd.DataFrame({
        "name": ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.q_proj.weight",
                 "model.layers.1.mlp.up_proj.weight", "model.embed_tokens.weight", "rotary.inv_freq"],
        "layer": pd.array([0, 1, 1, None, None], dtype="Int64"),
        "module": ["q_proj", "q_proj", "up_proj", "embed_tokens", "rotary"],
        "group": ["attention", "attention", "mlp", "embedding", "other"],
        "role": ["param", "param", "param", "param", "buffer"], "status": ["compared"] * 5,
        "numel": [100, 100, 200, 50, 4], "unchanged_tol=1e-05": [90, 50, 200, 0, 4],
    })
    table = layer_sparsity(diff, "tol=1e-05")
    assert list(zip(table["layer"], table["module"])) == [("0", "q_proj"), ("1", "q_proj"), ("1", "up_proj"),
                                                          ("-", "embed_tokens")]  # buffers left out
    assert list(table["sparsity (%)"]) == [90.0, 50.0, 100.0, 0.0]
    with pytest.raises(ValueError, match="no 'tol=1e-08' counts"):
        layer_sparsity(diff, "tol=1e-08")


CLIPPED = {("d", "base", "init"): 0.0, ("d", "base", "start"): 0.05, ("d", "full", "g"): 0.25, ("d", "full", "s"): 0.1,
           ("d", "subnet", "g"): 0.5}


def test_sparsity_table_shows_the_clipped_share_and_warns_over_the_threshold():
    table = sparsity_table(RUNS, {"g": _diff(90, 80), "s": _diff(20, 10)}, ACC, {}, clipped=CLIPPED,
                           max_clipped_share=0.1).set_index("run")
    assert (table.loc["g", "clipped_before"], table.loc["g", "clipped_after"]) == pytest.approx((5.0, 25.0))
    assert "clipped at evaluate.max_new_tokens (after 25.0%" in table.loc["g", "warning"]
    assert "before" not in table.loc["g", "warning"].split("(")[1]  # 5% of the start's is under 10%
    assert table.loc["s", "warning"] == ""  # 10% is not over 10%
    columns = list(table.columns)
    # beside the accuracies (each followed by its standard error)
    assert columns.index("clipped_before") == columns.index("accuracy_after_se") + 1


def test_sparsity_table_without_clipped_counts_says_unknown_and_warns_nothing():
    table = sparsity_table(RUNS, {"g": _diff(90, 80), "s": _diff(20, 10)}, ACC, {})
    assert table[["clipped_before", "clipped_after"]].isna().all().all()
    assert (table["warning"] == "").all()


def test_subnetwork_table_shows_each_checkpoints_clipped_share():
    table = subnetwork_table(RUNS, ACC, {"g": _diff(95, 50)}, {"g": 0.1}, clipped=CLIPPED)
    row = table.iloc[0]
    assert (row["clipped_start"], row["clipped_full"], row["clipped_subnetwork"]) == pytest.approx((5.0, 25.0, 50.0))


EXAMPLES = dict.fromkeys(ACC, 200)


def test_each_accuracy_has_its_binomial_standard_error_beside_it():
    """sqrt(p(1-p)/n) in points, n the examples scored: 40% and 50% of 200 are 3.46 and 3.54 points, 0% is 0."""
    table = sparsity_table(RUNS, {"g": _diff(90, 80), "s": _diff(20, 10)}, ACC, {},
                           warmup=warmup_run({"dataset": "d", "lr": 1e-3, "steps": 5}).as_dict(),
                           warmup_diff=_diff(1, 0), examples={**EXAMPLES, ("d", "full", "s"): 50})
    rows = table.set_index("run")
    assert (rows.loc["g", "accuracy_before_se"], rows.loc["g", "accuracy_after_se"]) == pytest.approx(
        (100 * (0.4 * 0.6 / 200) ** 0.5, 100 * (0.5 * 0.5 / 200) ** 0.5))
    assert rows.loc["s", "accuracy_after_se"] == pytest.approx(100 * (0.45 * 0.55 / 50) ** 0.5)  # its own n
    assert rows.loc["sft-from-init", "accuracy_before_se"] == 0.0  # no example right: no binomial spread
    columns = list(table.columns)
    for label in ("before", "after"):
        assert columns.index(f"accuracy_{label}_se") == columns.index(f"accuracy_{label}") + 1
    plain = sparsity_table(RUNS, {"g": _diff(90, 80), "s": _diff(20, 10)}, ACC, {},
                           warmup=warmup_run({"dataset": "d", "lr": 1e-3, "steps": 5}).as_dict(),
                           warmup_diff=_diff(1, 0))
    # Adding the errors changes no other number (the outcome is judged with them: without, "not measured").
    assert set(plain["outcome"]) == {"not measured"}
    pd.testing.assert_frame_equal(table.drop(columns=["accuracy_before_se", "accuracy_after_se", "outcome"]),
                                  plain.drop(columns=["accuracy_before_se", "accuracy_after_se", "outcome"]))
    assert plain[["accuracy_before_se", "accuracy_after_se"]].isna().all().all()  # no counts: not measured


def test_subnetwork_table_gives_every_checkpoints_accuracy_its_standard_error():
    accuracy = {**ACC, ("d", "random", "g--same"): 0.35}
    examples = {**EXAMPLES, ("d", "random", "g--same"): 100}
    row = subnetwork_table(RUNS, accuracy, {"g": _diff(95, 50)}, {"g": 0.1}, ["same"], examples=examples).iloc[0]
    for label, p, n in (("start", 0.4, 200), ("full", 0.5, 200), ("subnetwork", 0.55, 200),
                        ("random_same", 0.35, 100)):
        assert row[f"accuracy_{label}_se"] == pytest.approx(100 * (p * (1 - p) / n) ** 0.5), label


def test_study_tables_take_n_from_the_evaluation_parquets_rows(tmp_path):
    """The tables stage counts the examples each evaluation scored: 3 of 4 right is 75% +- 21.65 points."""
    from subnet_rl.tables import study_tables

    evals = []
    for variant, name, correct in (("base", "start", [True, False, False, False]),
                                   ("full", "g", [True, True, True, False])):
        path = tmp_path / "eval" / "d" / variant / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"correct": correct, "clipped": [False] * 4, "correct_off_policy_form": [False] * 4}).to_parquet(path)
        evals.append(str(path))
    diff = tmp_path / "diff" / "g.parquet"
    diff.parent.mkdir()
    _diff(90, 80).assign(role="param", status="compared").to_parquet(diff)
    overlap = tmp_path / "pairs.parquet"
    pd.DataFrame(columns=["run_1", "run_2", "sparsity_1", "sparsity_2", "o1", "random_o1", "o2", "random_o2",
                          "jaccard", "random_jaccard"]).to_parquet(overlap)
    tables = study_tables({"g": RUNS["g"]}, None, evals, [], [], [str(diff)], [], [], [], str(overlap),
                          max_clipped_share=1.0)
    g = tables["sparsity"].set_index("run").loc["g"]
    assert (g["accuracy_after"], g["accuracy_after_se"]) == pytest.approx((75.0, 100 * (0.75 * 0.25 / 4) ** 0.5))
    assert g["accuracy_before_se"] == pytest.approx(100 * (0.25 * 0.75 / 4) ** 0.5)
