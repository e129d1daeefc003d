import pandas as pd
import pytest

from subnet_rl.findings import (CLAIMS, COLUMNS, DEFAULT_THRESHOLDS, FAILS, HOLDS, NOT_MEASURED, compute_findings,
                                findings_markdown, load_tables, write_findings)

CRITERION = "tol=1e-05"
HEAD = f"sparsity {CRITERION}"


def _tables() -> dict[str, pd.DataFrame]:
    """Small tables, shaped as the study writes them, on which every claim holds."""
    base = {"regime": "learning", "steps": 20, "precision": "bf16", "seed": 1}
    sparsity = pd.DataFrame([
        {"run": "grpo-learn-s1", "algorithm": "grpo", "lr": 1e-6, **base, HEAD: 96.9, "sparsity tol=1e-08": 90.0},
        {"run": "rloo-learn-s1", "algorithm": "rloo", "lr": 1e-6, **base, HEAD: 88.0, "sparsity tol=1e-08": 80.0},
        {"run": "dpo-learn-s1", "algorithm": "dpo", "lr": 1e-6, **base, HEAD: 76.0, "sparsity tol=1e-08": 70.0},
        {"run": "sft-learn", "algorithm": "sft", "lr": 1e-6, **base, HEAD: 10.0, "sparsity tol=1e-08": 5.0},
        {"run": "grpo-paper", "algorithm": "grpo", "lr": 3e-6, **{**base, "regime": "paper"}, HEAD: 70.0,
         "sparsity tol=1e-08": 60.0},
        {"run": "sft-from-init", "algorithm": "sft", "regime": "warmup", "lr": 1e-3, "steps": 50, "precision": "fp32",
         "seed": 0, HEAD: 0.4, "sparsity tol=1e-08": 0.1},
    ])
    subnetwork = pd.DataFrame([
        {"run": "grpo-learn-s1", "algorithm": "grpo", "subnetwork (% of entries)": 3.1, "accuracy_start": 40.0,
         "accuracy_full": 50.0, "accuracy_subnetwork": 49.0, "accuracy_random_same": 42.0,
         "equal tol=1e-05 (%)": 85.0, "equal tol=0.0001 (%)": 95.0},
        {"run": "rloo-learn-s1", "algorithm": "rloo", "subnetwork (% of entries)": 11.9, "accuracy_start": 40.0,
         "accuracy_full": 48.0, "accuracy_subnetwork": 49.5, "accuracy_random_same": 44.0,
         "equal tol=1e-05 (%)": 80.0, "equal tol=0.0001 (%)": 93.0},
    ])
    overlap = pd.DataFrame([
        {"run_1": "grpo-learn-s1", "run_2": "rloo-learn-s1", "sparsity_1": 96.9, "sparsity_2": 88.1, "o1": 60.0,
         "random_o1": 11.9, "o2": 20.0, "random_o2": 3.1, "jaccard": 15.0, "random_jaccard": 2.5},
        {"run_1": "grpo-learn-s1", "run_2": "dpo-learn-s1", "sparsity_1": 96.9, "sparsity_2": 75.0, "o1": 70.0,
         "random_o1": 25.0, "o2": 10.0, "random_o2": 3.1, "jaccard": 9.0, "random_jaccard": 2.4},
    ])
    rank = pd.DataFrame([
        {"run": "grpo-learn-s1", "group": "attention", "rank_pct": 99.0, "stable_rank": 5.0, "tensors": 8},
        {"run": "grpo-learn-s1", "group": "mlp", "rank_pct": 97.0, "stable_rank": 6.0, "tensors": 6},
        {"run": "grpo-learn-s1", "group": "embedding", "rank_pct": 10.0, "stable_rank": 1.0, "tensors": 1},
    ])
    layers = pd.DataFrame([
        {"run": "grpo-learn-s1", "layer": "0", "q_proj": 95.0, "down_proj": 97.0},
        {"run": "grpo-learn-s1", "layer": "1", "q_proj": 96.0, "down_proj": 98.0},
        {"run": "grpo-learn-s1", "layer": "2", "q_proj": 94.0, "down_proj": 96.0},
        {"run": "grpo-learn-s1", "layer": "embed", "q_proj": 10.0, "down_proj": None},
    ])
    data = pd.DataFrame([
        {"run": "dpo-on", "algorithm": "dpo", "pairs": "on_policy", "lr": 1e-6, "steps": 20, "chosen_logp": -0.5,
         "rejected_logp": -0.7, "sparsity": 90.0},
        {"run": "dpo-off", "algorithm": "dpo", "pairs": "off_policy", "lr": 1e-6, "steps": 20, "chosen_logp": -1.9,
         "rejected_logp": -2.1, "sparsity": 60.0},
    ])
    precision = pd.DataFrame([
        {"algorithm": "grpo", "lr": 1e-6, "precision": "fp32", "run": "grpo-fp32", "sparsity": 30.0},
        {"algorithm": "grpo", "lr": 1e-6, "precision": "bf16", "run": "grpo-bf16", "sparsity": 95.0},
        {"algorithm": "sft", "lr": 1e-6, "precision": "fp32", "run": "sft-fp32", "sparsity": 5.0},
        {"algorithm": "sft", "lr": 1e-6, "precision": "bf16", "run": "sft-bf16", "sparsity": 6.0},
    ])
    return {"sparsity": sparsity, "subnetwork": subnetwork, "overlap": overlap, "rank": rank, "layers": layers,
            "data": data, "precision": precision}


def _verdicts(tables, **kwargs) -> dict[str, str]:
    return dict(zip(*compute_findings(tables, CRITERION, **kwargs)[["claim", "verdict"]].T.values))


def _row(tables, claim, **kwargs) -> pd.Series:
    df = compute_findings(tables, CRITERION, **kwargs)
    return df.set_index("claim").loc[claim]


def _set(df: pd.DataFrame, key: str, value: str, column: str, new) -> None:
    df.loc[df[key] == value, column] = new


def test_every_claim_holds_on_consistent_tables():
    df = compute_findings(_tables(), CRITERION)
    assert list(df.columns) == COLUMNS
    assert list(df["claim"]) == list(CLAIMS) and len(CLAIMS) == 11
    assert set(DEFAULT_THRESHOLDS) == set(CLAIMS)
    assert dict(zip(df["claim"], df["verdict"])) == dict.fromkeys(CLAIMS, HOLDS), df.to_string()


def test_evidence_quotes_the_numbers_and_runs():
    row = _row(_tables(), "rl-sparse")
    # RL runs only: the SFT control and SFT from init are left out of the median.
    assert "4 RL runs" in row["evidence"] and "median 82.0%" in row["evidence"]
    assert "grpo-paper 70.0%" in row["evidence"] and "grpo-learn-s1 96.9%" in row["evidence"]
    assert row["threshold"] == "median >= 50%"
    assert "median 5.2%" in _row(_tables(), "sft-dense")["evidence"]  # sft-learn 10.0 and sft-from-init 0.4
    # The largest tolerance column, not the first one.
    assert "tol=0.0001: mean 94.0%" in _row(_tables(), "subnetwork-same-weights")["evidence"]
    # The embedding's rank is left out.
    assert "mean 98.0%" in _row(_tables(), "full-rank")["evidence"]
    assert "-0.50" in _row(_tables(), "in-distribution")["evidence"]
    assert "grpo lr 1e-06: fp32 30.0%, bf16 95.0%" in _row(_tables(), "precision")["evidence"]
    matched = _row(_tables(), "matched-control")["evidence"]
    # Only same lr/steps/precision/regime pairs: grpo-paper (regime paper, lr 3e-6) has no control.
    assert matched.startswith("3/3 matched pairs") and "grpo-paper" not in matched


def test_headline_criterion_selects_the_column():
    tables = _tables()
    assert "median 82.0%" in _row(tables, "rl-sparse")["evidence"]
    # At tol=1e-08 the RL median is 75.0% (90, 80, 70, 60).
    row = compute_findings(tables, "tol=1e-08").set_index("claim").loc["rl-sparse"]
    assert "median 75.0%" in row["evidence"]


@pytest.mark.parametrize("claim, table, key, value, column, new", [
    ("rl-sparse", "sparsity", "algorithm", "grpo", HEAD, 20.0),
    ("sft-dense", "sparsity", "run", "sft-learn", HEAD, 60.0),
    ("matched-control", "sparsity", "run", "dpo-learn-s1", HEAD, 9.0),
    ("subnetwork-recovers", "subnetwork", "run", "rloo-learn-s1", "accuracy_subnetwork", 45.0),
    ("mask-beats-random", "subnetwork", "run", "grpo-learn-s1", "accuracy_random_same", 49.0),
    ("subnetwork-same-weights", "subnetwork", "run", "grpo-learn-s1", "equal tol=0.0001 (%)", 50.0),
    ("overlap-above-random", "overlap", "run_2", "dpo-learn-s1", "o2", 3.0),
    ("full-rank", "rank", "group", "mlp", "rank_pct", 40.0),
    ("layers-uniform", "layers", "layer", "1", "q_proj", 40.0),
    ("in-distribution", "data", "pairs", "off_policy", "sparsity", 95.0),
    ("precision", "precision", "run", "grpo-fp32", "sparsity", 80.0),
])
def test_one_number_flips_its_verdict(claim, table, key, value, column, new):
    tables = _tables()
    _set(tables[table], key, value, column, new)
    verdicts = _verdicts(tables)
    assert verdicts[claim] == FAILS, compute_findings(tables, CRITERION).set_index("claim").loc[claim, "evidence"]
    # Only that claim: the edit is chosen to serve no other.
    assert {c for c, v in verdicts.items() if v != HOLDS} == {claim}


def test_sparsity_from_init_is_not_a_control():
    tables = _tables()
    # An RL run at sft-from-init's lr/steps/precision/regime would be "matched" only if it counted as a control.
    extra = {"run": "grpo-warm", "algorithm": "grpo", "regime": "warmup", "lr": 1e-3, "steps": 50,
             "precision": "fp32", "seed": 0, HEAD: 0.1}
    tables["sparsity"] = pd.concat([tables["sparsity"], pd.DataFrame([extra])], ignore_index=True)
    assert _row(tables, "matched-control")["verdict"] == HOLDS


def test_float_noise_in_lr_still_matches():
    tables = _tables()
    tables["sparsity"]["lr"] = tables["sparsity"]["lr"] * (1 + 1e-12)
    tables["sparsity"].loc[tables["sparsity"]["run"] == "sft-learn", "lr"] = 1e-6
    assert _row(tables, "matched-control")["evidence"].startswith("3/3")


def test_thresholds_are_overridable_and_checked():
    assert _verdicts(_tables(), thresholds={"rl-sparse": 90.0})["rl-sparse"] == FAILS
    assert _row(_tables(), "rl-sparse", thresholds={"rl-sparse": 90.0})["threshold"] == "median >= 90%"
    # grpo's subnetwork falls 1.0 point short of full finetuning: within 2 points, not within 0.5.
    assert _verdicts(_tables(), thresholds={"subnetwork-recovers": 0.5})["subnetwork-recovers"] == FAILS
    assert _verdicts(_tables(), thresholds={"overlap-above-random": 1.0})["overlap-above-random"] == HOLDS
    with pytest.raises(ValueError, match="rl_sparse"):
        compute_findings(_tables(), CRITERION, thresholds={"rl_sparse": 1.0})


def test_overlap_share_threshold():
    tables = _tables()
    _set(tables["overlap"], "run_2", "dpo-learn-s1", "o2", 3.0)  # 1 of 2 pairs above random
    assert _verdicts(tables, thresholds={"overlap-above-random": 0.5})["overlap-above-random"] == HOLDS
    assert "1/2 pairs (50.0%)" in _row(tables, "overlap-above-random")["evidence"]


def test_missing_tables_are_not_measured():
    df = compute_findings({}, CRITERION)
    assert set(df["verdict"]) == {NOT_MEASURED}
    assert not df["evidence"].str.contains(r"\d+\.\d", regex=True).any()  # no made-up number


@pytest.mark.parametrize("claim, table, drop", [
    ("rl-sparse", "sparsity", HEAD),
    ("matched-control", "sparsity", "steps"),
    ("mask-beats-random", "subnetwork", "accuracy_random_same"),
    ("subnetwork-same-weights", "subnetwork", ["equal tol=1e-05 (%)", "equal tol=0.0001 (%)"]),
    ("full-rank", "rank", "rank_pct"),
    ("overlap-above-random", "overlap", "random_o1"),
    ("in-distribution", "data", "pairs"),
    ("precision", "precision", "precision"),
])
def test_missing_columns_are_not_measured(claim, table, drop):
    tables = _tables()
    tables[table] = tables[table].drop(columns=drop)
    assert _verdicts(tables)[claim] == NOT_MEASURED


def test_no_qualifying_rows_are_not_measured():
    tables = _tables()
    tables["subnetwork"]["accuracy_random_same"] = float("nan")
    tables["data"] = tables["data"][tables["data"]["pairs"] == "on_policy"]
    tables["precision"] = tables["precision"][tables["precision"]["precision"] == "bf16"]
    tables["layers"] = tables["layers"][tables["layers"]["layer"].isin(["0", "embed"])]
    tables["rank"] = tables["rank"][tables["rank"]["group"] == "embedding"]
    tables["sparsity"] = tables["sparsity"][tables["sparsity"]["algorithm"] != "sft"]
    verdicts = _verdicts(tables)
    for claim in ("mask-beats-random", "in-distribution", "precision", "layers-uniform", "full-rank", "sft-dense",
                  "matched-control"):
        assert verdicts[claim] == NOT_MEASURED, claim
    assert verdicts["rl-sparse"] == HOLDS


def test_precision_pairs_need_the_same_steps():
    tables = _tables()
    tables["precision"]["steps"] = [20, 40, 20, 20]  # grpo fp32 and bf16 ran for different lengths
    assert _verdicts(tables)["precision"] == NOT_MEASURED
    tables["precision"]["steps"] = 20
    assert _verdicts(tables)["precision"] == HOLDS


def test_rank_stage_column_name_is_read():
    tables = _tables()
    tables["rank"] = tables["rank"].rename(columns={"rank_pct": "mean_rank_pct"})
    assert _verdicts(tables)["full-rank"] == HOLDS
    _set(tables["rank"], "group", "attention", "mean_rank_pct", 10.0)
    assert _verdicts(tables)["full-rank"] == FAILS


def test_written_and_read_back(tmp_path):
    tables = _tables()
    for name, df in tables.items():
        df.to_csv(tmp_path / f"{name}.csv", index=False)
    (tmp_path / "empty.csv").write_text("")
    loaded = load_tables(tmp_path)
    assert set(loaded) == {*tables, "empty"} and loaded["empty"].empty
    assert load_tables(tmp_path / "absent") == {}
    df = compute_findings(loaded, CRITERION)
    assert set(df["verdict"]) == {HOLDS}  # layer labels and lr survive the CSV round trip
    write_findings(df, tmp_path / "out" / "findings.csv", tmp_path / "out" / "findings.md")
    back = pd.read_csv(tmp_path / "out" / "findings.csv")
    pd.testing.assert_frame_equal(back, df)
    md = (tmp_path / "out" / "findings.md").read_text()
    assert md.startswith("# ") and "| claim | statement | verdict | evidence | threshold |" in md
    for claim, statement in CLAIMS.items():
        assert f"| {claim} | {statement} | holds |" in md
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_markdown_escapes_pipes():
    df = pd.DataFrame([{"claim": "rl-sparse", "verdict": HOLDS, "evidence": "a | b", "threshold": "> 1"}])
    md = findings_markdown(df)
    assert "a \\| b" in md and md.count("\n| rl-sparse") == 1
