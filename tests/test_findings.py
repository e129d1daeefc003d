"""Findings computed from tables that the study's own table writers build (tables.py, comparisons.py), from
stage outputs shaped as the stages write them: one-tensor diff tables, per-tensor rank rows, mask overlap
counts. Every claim holds on them; each test then edits the written tables the way a result would differ.
"""

import dataclasses
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
import torch
import yaml

from subnet_rl import algorithms
from subnet_rl.comparisons import controls_table, data_table, precision_table
from subnet_rl.config import RunSpec, warmup_run
from subnet_rl.diff import describe
from subnet_rl.frontier import frontier_table
from subnet_rl.findings import (CLAIMS, COLUMNS, FAILS, HOLDS, NOT_MEASURED, compute_findings, findings_markdown,
                                load_tables, write_findings)
from subnet_rl.findings.subnetwork_checks import RANK_EXCLUDED
from subnet_rl.overlap import overlap_stats
from subnet_rl.rank import update_rank
from subnet_rl.tables import layers_table, overlap_table, rank_table, sparsity_table, subnetwork_table

CRITERION = "tol=1e-05"
HEAD = f"sparsity {CRITERION}"
SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
NUMEL = 1000

#: run -> (algorithm, lr, precision, pairs, % unchanged at tol=1e-05, at tol=1e-08)
RUNS = {
    "grpo-learn-s1": ("grpo", 1e-6, "bf16", "on_policy", 96.9, 90.0),
    "rloo-learn-s1": ("rloo", 1e-6, "bf16", "on_policy", 88.0, 80.0),
    "dpo-learn-s1": ("dpo", 1e-6, "bf16", "on_policy", 76.0, 70.0),
    "dpo-learn-off": ("dpo", 1e-6, "bf16", "off_policy", 60.0, 50.0),
    "grpo-learn-fp32": ("grpo", 1e-6, "fp32", "on_policy", 30.0, 25.0),
    "sft-learn": ("sft", 1e-6, "bf16", "on_policy", 10.0, 5.0),
    "sft-learn-fp32": ("sft", 1e-6, "fp32", "on_policy", 5.0, 2.0),
    "grpo-paper": ("grpo", 3e-6, "bf16", "on_policy", 70.0, 60.0),
}
WARMUP = warmup_run({"dataset": "addition", "lr": 1e-3, "steps": 50}).as_dict()
#: examples scored per evaluation: so many that the fixture's differences of a point are beyond the noise
#: (2 combined standard errors near 50% are 0.71 points); on 200 examples they are noise.
EXAMPLES = 40_000


def _specs() -> dict[str, dict]:
    """The runs as the workflow passes them to the table stages: RunSpec.from_config(...).as_dict()."""
    entries = {name: {"algorithm": a, "lr": lr, "steps": 20, "seed": 1, "dataset": "addition", "precision": p,
                      "regime": "paper" if name.endswith("paper") else "learning",
                      **({"pairs": pairs} if algorithms.get_algorithm(a).reads_pairs else {})}
               for name, (a, lr, p, pairs, _, _) in RUNS.items()}
    config = {"datasets": {"addition": {"source": "synthetic"}}, "training": {}, "runs": entries}
    return {name: RunSpec.from_config(config, name).as_dict() for name in entries}


def _diff(unchanged_pct: dict[str, float]) -> pd.DataFrame:
    """A one-tensor diff table: per criterion label, the count of entries unchanged (% of NUMEL given)."""
    counts = {f"unchanged_{label}": [round(pct * NUMEL / 100)] for label, pct in unchanged_pct.items()}
    return pd.DataFrame({"name": ["model.layers.0.mlp.up_proj.weight"], "numel": [NUMEL], **counts})


def _layer_diff(sparsity_pct: dict[str, float]) -> pd.DataFrame:
    """A diff table with the columns the diff stage writes per tensor, `describe`'s among them."""
    rows = [{"name": n, **describe(n), "role": "param", "status": "compared", "numel": NUMEL,
             "unchanged_tol=1e-05": round(p * NUMEL / 100)} for n, p in sparsity_pct.items()]
    return pd.DataFrame(rows)


def _rank_rows(ranks: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """Per-tensor rank rows as the rank stage writes them, from diagonal updates of a given rank."""
    rows = []
    for name, (rank, size) in ranks.items():
        delta = torch.diag(torch.tensor([1.0] * rank + [0.0] * (size - rank)))
        rows.append({"name": name, **describe(name), "shape": [size, size], **update_rank(delta)})
    return pd.DataFrame(rows)


def _tables(examples: int = EXAMPLES) -> dict[str, pd.DataFrame]:
    """The study's tables, written by their writers from stage outputs, on which every claim holds (with
    `examples` scored per evaluation)."""
    specs = _specs()
    accuracy = {("addition", "base", "init"): 0.0, ("addition", "base", "start"): 0.4,
                **{("addition", "full", name): 0.5 for name in RUNS},
                ("addition", "full", "rloo-learn-s1"): 0.48, ("addition", "subnet", "grpo-learn-s1"): 0.49,
                ("addition", "subnet", "rloo-learn-s1"): 0.495, ("addition", "random", "grpo-learn-s1--same"): 0.42,
                ("addition", "random", "rloo-learn-s1--same"): 0.44}
    diffs = {name: _diff({"tol=1e-05": row[4], "tol=1e-08": row[5], "bf16_bitwise": 0.0, "exact": 0.0}) for name, row in RUNS.items()}
    warmup_diff = _diff({"tol=1e-05": 0.4, "tol=1e-08": 0.1, "bf16_bitwise": 0.0, "exact": 0.0})
    counts = dict.fromkeys(accuracy, examples)
    sparsity = sparsity_table(specs, diffs, accuracy, {}, WARMUP, warmup_diff, examples=counts)
    subnet = {"grpo-learn-s1": _diff({"tol=1e-05": 85.0, "tol=0.0001": 95.0}),
              "rloo-learn-s1": _diff({"tol=1e-05": 80.0, "tol=0.0001": 93.0})}
    subnetwork = subnetwork_table(specs, accuracy, subnet, {"grpo-learn-s1": 0.031, "rloo-learn-s1": 0.119}, ["same"],
                                  examples=counts)
    overlap = overlap_table(pd.DataFrame([
        {"run_1": "grpo-learn-s1", "run_2": "rloo-learn-s1", **overlap_stats(NUMEL, 31, 120, 24)},
        {"run_1": "grpo-learn-s1", "run_2": "dpo-learn-s1", **overlap_stats(NUMEL, 31, 240, 20)}]))
    rank = rank_table({"grpo-learn-s1": _rank_rows({"model.layers.0.self_attn.q_proj.weight": (10, 10),
                                                    "model.layers.0.mlp.up_proj.weight": (24, 25),
                                                    "model.embed_tokens.weight": (1, 10)})}, specs)
    layers = layers_table({"grpo-learn-s1": _layer_diff({
        "model.layers.0.self_attn.q_proj.weight": 95.0, "model.layers.0.mlp.down_proj.weight": 97.0,
        "model.layers.1.self_attn.q_proj.weight": 96.0, "model.layers.1.mlp.down_proj.weight": 98.0,
        "model.layers.2.self_attn.q_proj.weight": 94.0, "model.layers.2.mlp.down_proj.weight": 96.0,
        "model.embed_tokens.weight": 10.0})}, CRITERION)
    likelihoods = {"dpo-learn-s1": (-0.5, -0.7), "dpo-learn-off": (-1.9, -2.1)}
    return {"sparsity": sparsity, "subnetwork": subnetwork, "overlap": overlap, "rank": rank, "layers": layers,
            "controls": controls_table(specs, sparsity, CRITERION),
            "data": data_table(specs, sparsity, CRITERION, likelihoods),
            "precision": precision_table(specs, sparsity, CRITERION),
            "frontier": frontier_table(specs, sparsity, CRITERION)}


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
    assert list(df["claim"]) == list(CLAIMS) and len(CLAIMS) == 12
    assert dict(zip(df["claim"], df["verdict"])) == dict.fromkeys(CLAIMS, HOLDS), df.to_string()
    assert list(df["threshold"]) == [claim.threshold_text(claim.threshold) for claim in CLAIMS.values()]


def test_the_schema_offers_exactly_the_registered_claims():
    """One claim, one registry entry: the config's `findings:` keys are the registry's ids, in its order,
    and the registry's defaults are valid values of them (the schema states no default of its own)."""
    section = yaml.safe_load(SCHEMA.read_text())["properties"]["findings"]
    assert list(section["properties"]) == list(CLAIMS)
    assert not any("default" in prop for prop in section["properties"].values())
    jsonschema.validate({c.id: c.threshold for c in CLAIMS.values()}, section)


def test_evidence_quotes_the_numbers_and_runs():
    row = _row(_tables(), "rl-sparse")
    # RL runs only: the SFT controls and SFT from init are left out of the median.
    assert "6 RL runs" in row["evidence"] and "median 73.0%" in row["evidence"]
    assert "grpo-learn-fp32 30.0%" in row["evidence"] and "grpo-learn-s1 96.9%" in row["evidence"]
    assert row["threshold"] == "median >= 50%"
    assert "3 SFT runs: median 5.0%" in _row(_tables(), "sft-dense")["evidence"]  # 10.0, 5.0 and sft-from-init 0.4
    # The largest tolerance column, not the first one.
    assert "tol=0.0001: mean 94.0%" in _row(_tables(), "subnetwork-same-weights")["evidence"]
    # The embedding's rank (10%) is left out: attention 100%, mlp 96%.
    assert "mean 98.0%" in _row(_tables(), "full-rank")["evidence"]
    assert "-0.50" in _row(_tables(), "in-distribution")["evidence"]
    assert "grpo lr 1e-06: fp32 30.0%, bf16 96.9%" in _row(_tables(), "precision")["evidence"]
    matched = _row(_tables(), "matched-control")["evidence"]
    # The controls table's pairs: grpo-paper (lr 3e-6) has no control; dpo-learn-off's pairs are DPO's own.
    assert matched.startswith("5/5 matched pairs") and "grpo-paper" not in matched
    assert "dpo-learn-off 60.0% > sft-learn 10.0% (lr 1e-06)" in matched
    assert "grpo-learn-fp32 30.0% > sft-learn-fp32 5.0%" in matched


def test_headline_criterion_selects_the_column():
    tables = _tables()
    assert "median 73.0%" in _row(tables, "rl-sparse")["evidence"]
    # At tol=1e-08 the RL median is 65.0% (90, 80, 70, 60, 50, 25).
    row = compute_findings(tables, "tol=1e-08").set_index("claim").loc["rl-sparse"]
    assert "median 65.0%" in row["evidence"]


@pytest.mark.parametrize("claim, table, key, value, column, new", [
    ("rl-sparse", "sparsity", "algorithm", "grpo", HEAD, 20.0),
    ("sft-dense", "sparsity", "algorithm", "sft", HEAD, 60.0),
    ("matched-control", "controls", "run", "dpo-learn-s1", "sparsity", 9.0),
    ("matched-gain", "frontier", "run", "grpo-learn-fp32", "sparsity", 4.0),  # under the fp32 SFT run's 5%
    ("subnetwork-recovers", "subnetwork", "run", "rloo-learn-s1", "accuracy_subnetwork", 45.0),
    ("mask-beats-random", "subnetwork", "run", "grpo-learn-s1", "accuracy_random_same", 49.0),
    ("subnetwork-same-weights", "subnetwork", "run", "grpo-learn-s1", "equal tol=0.0001 (%)", 50.0),
    ("overlap-above-random", "overlap", "run_2", "dpo-learn-s1", "o2", 3.0),
    ("full-rank", "rank", "group", "mlp", "mean_rank_pct", 40.0),
    ("layers-uniform", "layers", "layer", "1", "q_proj", 40.0),
    ("in-distribution", "data", "pairs", "off_policy", "sparsity", 95.0),
    ("precision", "precision", "run", "grpo-learn-fp32", "sparsity", 80.0),
])
def test_one_number_flips_its_verdict(claim, table, key, value, column, new):
    tables = _tables()
    _set(tables[table], key, value, column, new)
    verdicts = _verdicts(tables)
    assert verdicts[claim] == FAILS, compute_findings(tables, CRITERION).set_index("claim").loc[claim, "evidence"]
    # Only that claim: the edit is chosen to serve no other.
    assert {c for c, v in verdicts.items() if v != HOLDS} == {claim}


def test_rl_and_sft_are_the_algorithm_registrys(monkeypatch):
    """Which runs are RL is `Algorithm.is_rl`, not the algorithm's name: registered as RL, SFT runs leave
    no SFT run to be dense, and an algorithm the registry lacks is an error, not silently RL."""
    monkeypatch.setitem(algorithms.ALGORITHMS, "sft", dataclasses.replace(algorithms.ALGORITHMS["sft"], is_rl=True))
    assert _verdicts(_tables())["sft-dense"] == NOT_MEASURED
    monkeypatch.undo()
    tables = _tables()
    _set(tables["sparsity"], "run", "grpo-paper", "algorithm", "ppo")
    with pytest.raises(ValueError, match="ppo"):
        compute_findings(tables, CRITERION)


def test_rank_leaves_out_the_group_the_diff_gives_embeddings():
    assert {describe("model.embed_tokens.weight")["group"], describe("lm_head.weight")["group"]} == RANK_EXCLUDED
    tables = _tables()
    tables["rank"] = tables["rank"][tables["rank"]["group"] == "embedding"]
    assert _verdicts(tables)["full-rank"] == NOT_MEASURED


def test_float_noise_in_lr_still_matches():
    tables = _tables()
    _set(tables["precision"], "run", "grpo-learn-fp32", "lr", 1e-6 * (1 + 1e-12))
    _set(tables["data"], "run", "dpo-learn-off", "lr", 1e-6 * (1 + 1e-12))
    verdicts = _verdicts(tables)
    assert (verdicts["precision"], verdicts["in-distribution"]) == (HOLDS, HOLDS)


def test_thresholds_are_overridable_and_checked():
    assert _verdicts(_tables(), thresholds={"rl-sparse": 90.0})["rl-sparse"] == FAILS
    assert _row(_tables(), "rl-sparse", thresholds={"rl-sparse": 90.0})["threshold"] == "median >= 90%"
    # grpo's subnetwork falls 1.0 point short of full finetuning: within 2 points, not within 0.5 (0.5 points
    # from the margin, inside the noise of 0.71: not shown to recover).
    assert _verdicts(_tables(), thresholds={"subnetwork-recovers": 0.5})["subnetwork-recovers"] == FAILS
    assert _verdicts(_tables(), thresholds={"overlap-above-random": 1.0})["overlap-above-random"] == HOLDS
    # Every RL run is 25 points or more sparser than its control (the closest: 30.0 vs 5.0), not 30.
    assert _verdicts(_tables(), thresholds={"matched-control": 24.0})["matched-control"] == HOLDS
    assert _verdicts(_tables(), thresholds={"matched-control": 30.0})["matched-control"] == FAILS
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
    ("matched-control", "controls", "control_sparsity"),
    ("mask-beats-random", "subnetwork", "accuracy_random_same"),
    ("mask-beats-random", "subnetwork", "accuracy_random_same_se"),
    ("subnetwork-recovers", "subnetwork", "accuracy_subnetwork_se"),
    ("subnetwork-same-weights", "subnetwork", ["equal tol=1e-05 (%)", "equal tol=0.0001 (%)"]),
    ("full-rank", "rank", "mean_rank_pct"),
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
    tables["layers"] = tables["layers"][tables["layers"]["layer"].isin(["0", "-"])]
    tables["sparsity"] = tables["sparsity"][tables["sparsity"]["algorithm"] != "sft"]
    tables["controls"]["control_sparsity"] = float("nan")  # the controls' sparsity not measured yet
    verdicts = _verdicts(tables)
    for claim in ("mask-beats-random", "in-distribution", "precision", "layers-uniform", "sft-dense",
                  "matched-control"):
        assert verdicts[claim] == NOT_MEASURED, claim
    assert verdicts["rl-sparse"] == HOLDS


def test_precision_pairs_need_the_same_steps():
    tables = _tables()
    _set(tables["precision"], "run", "grpo-learn-s1", "steps", 40)  # grpo fp32 and bf16 ran for different lengths
    assert _verdicts(tables)["precision"] == NOT_MEASURED
    tables["precision"]["steps"] = 20
    assert _verdicts(tables)["precision"] == HOLDS


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
    for claim in CLAIMS.values():
        assert f"| {claim.id} | {claim.statement} | holds |" in md
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_markdown_escapes_pipes():
    df = pd.DataFrame([{"claim": "rl-sparse", "verdict": HOLDS, "evidence": "a | b", "threshold": "> 1"}])
    md = findings_markdown(df)
    assert "a \\| b" in md and md.count("\n| rl-sparse") == 1


def test_a_difference_within_the_noise_decides_nothing():
    """The fixture's accuracies on 200 examples instead of 40,000: grpo's subnetwork 1 point below full (2
    points from the margin of -2) and 7 above random, against noise of 2 combined standard errors, about 10
    points: neither claim is a win, and the evidence says the difference is within noise."""
    small = _verdicts(_tables(examples=200))
    assert (small["subnetwork-recovers"], small["mask-beats-random"]) == (FAILS, FAILS)
    assert {c for c, v in small.items() if v != HOLDS} == {"subnetwork-recovers", "mask-beats-random"}
    recovers = _row(_tables(examples=200), "subnetwork-recovers")["evidence"]
    assert recovers.startswith("0/2 runs recover beyond noise")
    assert "grpo-learn-s1 full 50.0%, subnetwork 49.0% (-1.00 points, noise ±10.00, within noise)" in recovers
    beats = _row(_tables(examples=200), "mask-beats-random")["evidence"]
    assert "grpo-learn-s1 subnetwork 49.0% ~ random 42.0% (+7.00 points, noise ±9.93, within noise)" in beats
    large = _row(_tables(), "mask-beats-random")["evidence"]
    assert "grpo-learn-s1 subnetwork 49.0% > random 42.0% (+7.00 points, noise ±0.70)" in large
    assert "within noise" not in large


def test_a_difference_beyond_the_noise_on_the_wrong_side_fails():
    tables = _tables()
    _set(tables["subnetwork"], "run", "grpo-learn-s1", "accuracy_random_same", 55.0)
    evidence = _row(tables, "mask-beats-random")["evidence"]
    assert _verdicts(tables)["mask-beats-random"] == FAILS
    assert "grpo-learn-s1 subnetwork 49.0% <= random 55.0% (-6.00 points" in evidence and "within noise" not in evidence


def test_the_noise_rule():
    """Within noise when the difference is less than 2 combined standard errors from its threshold."""
    from subnet_rl.uncertainty import combined_standard_error, judge

    assert combined_standard_error(3.0, 4.0) == 5.0
    assert judge(9.9, 0.0, 5.0) == "within noise" and judge(-9.9, 0.0, 5.0) == "within noise"
    assert judge(10.0, 0.0, 5.0) == "above" and judge(-10.0, 0.0, 5.0) == "below"
    assert judge(-1.0, -2.0, 0.4) == "above" and judge(-1.0, -2.0, 0.6) == "within noise"  # from the margin
    assert judge(1.0, 0.0, float("nan")) == "within noise"  # an unknown error decides nothing
    assert judge(0.0, 0.0, 0.0) == "below"  # no spread and no difference: not above


def test_the_thresholds_and_the_page_state_the_noise_rule():
    threshold = _row(_tables(), "mask-beats-random")["threshold"]
    assert threshold == "> random + 0.0 points by 2 combined SE (beyond noise), every run"
    assert "by 2 combined SE" in _row(_tables(), "subnetwork-recovers")["threshold"]
    md = findings_markdown(compute_findings(_tables(), CRITERION))
    assert "within noise" in md and "sqrt(se1² + se2²)" in md
