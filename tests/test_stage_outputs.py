"""Upstream outputs are checked where they are read: a bad file is named with the rule that writes it, a
diff table must hold one row per tensor of its checkpoints, and old presentation outputs survive a bad
input (the `check_inputs` gate runs before the rule that would delete them)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from subnet_rl.diff import diff_checkpoints
from subnet_rl.stage_checks import check_diff_table, check_output, check_stage_inputs, diff_pairs
from subnet_rl.stage_outputs import (PRODUCERS, StageOutputError, checks_of, producer, read_csv, read_diff, read_json,
                                     read_parquet)
from subnet_rl.step_sparsity_records import records_frame
from subnet_rl.tables import COMPARISON_TABLES

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def checkpoint(folder: Path, tensors: dict[str, torch.Tensor]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"))
    return folder


@pytest.fixture
def diff_pair(tmp_path):
    """A start checkpoint, a run's checkpoint (one tensor updated) and their diff table, at workflow paths."""
    torch.manual_seed(0)
    weights = {"model.layers.0.mlp.up_proj.weight": torch.randn(4, 3), "model.norm.weight": torch.ones(3),
               "model.embed_tokens.weight": torch.randn(5, 3)}
    before = checkpoint(tmp_path / "results/checkpoints/base/start", weights)
    updated = {**weights, "model.norm.weight": weights["model.norm.weight"] + 1.0}
    after = checkpoint(tmp_path / "results/checkpoints/full/grpo-s1", updated)
    diff = tmp_path / "results/diff/full/grpo-s1.parquet"
    diff.parent.mkdir(parents=True)
    diff_checkpoints(before, after).to_parquet(diff, index=False)
    return diff, before, after


def message(excinfo) -> str:
    return str(excinfo.value)


# -- unreadable files ------------------------------------------------------------------------------------

def test_corrupt_parquet_names_the_file_and_the_rule_that_writes_it(diff_pair):
    diff, _, _ = diff_pair
    diff.write_bytes(b"PAR1 this is not a parquet file at all PAR1")
    with pytest.raises(StageOutputError) as excinfo:
        read_diff(diff)
    assert str(diff) in message(excinfo)
    assert "cannot be read as Parquet" in message(excinfo)
    assert "rule `diff`" in message(excinfo) and "delete it and rerun snakemake" in message(excinfo)


def test_truncated_parquet_names_the_file_and_the_rule(diff_pair):
    diff, _, _ = diff_pair
    data = diff.read_bytes()
    diff.write_bytes(data[: len(data) // 2])
    with pytest.raises(StageOutputError) as excinfo:
        read_parquet(diff)
    assert str(diff) in message(excinfo) and "rule `diff`" in message(excinfo)


def test_missing_file_and_missing_columns_are_named(tmp_path):
    evals = tmp_path / "results/eval/addition/full/grpo-a.parquet"
    with pytest.raises(StageOutputError, match=r"grpo-a\.parquet does not exist: .*rule `evaluate`"):
        read_parquet(evals)
    evals.parent.mkdir(parents=True)
    pd.DataFrame({"answer": [1]}).to_parquet(evals)
    with pytest.raises(StageOutputError, match=r"lacks the columns \['correct'\].*rule `evaluate`"):
        read_parquet(evals, ["correct"])


def test_csv_and_json_readers(tmp_path):
    empty = tmp_path / "results/tables/dynamics.csv"
    empty.parent.mkdir(parents=True)
    empty.write_text("\n")
    assert read_csv(empty).empty  # a table without rows is written as an empty file
    record = tmp_path / "results/downloads/org--model.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"revision": "abc"')
    with pytest.raises(StageOutputError, match=r"org--model\.json cannot be read as JSON .*rule `download_checkpoint`"):
        read_json(record)
    record.write_text('{"revision": "abc"}')
    with pytest.raises(StageOutputError, match=r"lacks the keys \['path'\]"):
        read_json(record, ["revision", "path"])


def test_a_file_inside_a_checkpoint_folder_says_to_delete_the_folder(tmp_path):
    record = tmp_path / "results/checkpoints/full/grpo-a/training.json"
    record.parent.mkdir(parents=True)
    record.write_text("{")
    with pytest.raises(StageOutputError) as excinfo:
        read_json(record)
    assert f"delete the folder {record.parent.as_posix()} and rerun" in message(excinfo)
    assert "rule `train_full`" in message(excinfo)


# -- diff tables against their checkpoints ------------------------------------------------------------

def test_a_complete_diff_table_passes(diff_pair):
    diff, before, after = diff_pair
    assert check_diff_table(read_diff(diff), diff, before, after) == {"rows": 3, "tensors": 3}


@pytest.mark.parametrize("mutate,problem", [
    (lambda t: t[t["name"] != "model.norm.weight"], r"no row for model\.norm\.weight"),
    (lambda t: pd.concat([t, t.iloc[[0]]]), r"several rows for model\.embed_tokens\.weight"),
    (lambda t: pd.concat([t, t.iloc[[0]].assign(name="model.extra.weight")]),
     r"rows for no tensor of the checkpoints: model\.extra\.weight"),
    (lambda t: t.assign(numel=t["numel"] * 2),
     r"rows that disagree with the checkpoints' headers: model\.embed_tokens\.weight \(status compared, "
     r"numel 30; the checkpoints give compared, 15\)"),
], ids=["missing_row", "repeated_row", "extra_row", "other_checkpoints"])
def test_diff_rows_must_match_the_checkpoints(diff_pair, mutate, problem):
    diff, before, after = diff_pair
    table = mutate(read_diff(diff))
    table.to_parquet(diff, index=False)
    with pytest.raises(StageOutputError) as excinfo:
        check_stage_inputs([diff], {str(diff): [str(before), str(after)]})
    text = message(excinfo)
    assert re.search(problem, text), text
    assert str(diff) in text and str(before) in text and str(after) in text
    assert "rule `diff`" in text


def test_missing_rows_change_the_sparsity_the_check_guards(diff_pair):
    """Why the check exists: without the norm's row (its one changed tensor), the run looks untouched."""
    from subnet_rl.diff import sparsity

    diff, _, _ = diff_pair
    table = read_diff(diff)
    assert sparsity(table)["exact"] < 1.0
    assert sparsity(table[table["name"] != "model.norm.weight"])["exact"] == 1.0


def test_every_bad_input_is_listed_at_once(diff_pair, tmp_path):
    diff, before, after = diff_pair
    evals = tmp_path / "results/eval/addition/full/grpo-s1.parquet"
    evals.parent.mkdir(parents=True)
    evals.write_bytes(b"garbage")
    table = read_diff(diff)
    table[table["name"] != "model.norm.weight"].to_parquet(diff, index=False)
    with pytest.raises(StageOutputError) as excinfo:
        check_stage_inputs([diff, evals, after], {str(diff): [str(before), str(after)]})
    assert "2 upstream outputs are bad" in message(excinfo)
    assert "rule `evaluate`" in message(excinfo) and "rule `diff`" in message(excinfo)


def test_checkpoint_folders_and_masks_are_read_by_their_headers(diff_pair, tmp_path):
    _, before, after = diff_pair
    (after / "training.json").write_text(json.dumps({"log_history": []}))
    assert check_output(after) == {"tensors": 3, "training.json keys": 1}
    (before / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(StageOutputError, match=r"cannot be read as a checkpoint .*rule `warmup` or `build_model`"):
        check_output(before)
    # A run that recorded its step sparsity (training.json says so) must hold the records, readable.
    (after / "training.json").write_text(json.dumps({"run": {"step_sparsity": True}}))
    with pytest.raises(StageOutputError,
                       match=r"step_sparsity.parquet does not exist: .*`train_full`; delete the folder"):
        check_output(after)
    records_frame([[1, 2, 10]]).to_parquet(after / "step_sparsity.parquet")
    assert check_output(after) == {"tensors": 3, "training.json keys": 1, "step_sparsity.parquet": 1}
    pd.DataFrame({"step": [1]}).to_parquet(after / "step_sparsity.parquet")
    with pytest.raises(StageOutputError, match=r"lacks the columns \['changed', 'total', 'changed_pct'\]"):
        check_output(after)
    mask = tmp_path / "results/masks/grpo-s1.safetensors"
    mask.parent.mkdir(parents=True)
    mask.write_bytes(b"short")
    with pytest.raises(StageOutputError, match=r"cannot be read as safetensors .*rule `mask`"):
        check_output(mask)


# -- the path -> rule table -------------------------------------------------------------------------------

@pytest.mark.parametrize("path,rules", [
    ("results/diff/full/grpo-s1.parquet", ["diff"]),
    ("/abs/work/results/diff/pairs/deepseek.parquet", ["diff"]),
    ("results/eval/math500/random/grpo-a--0.01.parquet", ["evaluate"]),
    ("results/masks/random/grpo-a--same.safetensors", ["random_mask"]),
    ("results/masks/grpo-a.safetensors", ["mask"]),
    ("results/checkpoints/base/qwen-7b", ["fetch_model"]),
    ("results/checkpoints/subnet/grpo-a/training.json", ["train_subnetwork"]),
    ("results/pairs_off_policy/start/addition.parquet", ["off_policy_pairs"]),
    ("results/dynamics/grpo-a/split.parquet", ["dynamics"]),
    ("results/tables/layers.csv", ["analysis_tables"]),
    ("results/tables/step_sparsity_summary.md", ["step_sparsity_table"]),
    ("results/checkpoints/full/grpo-a/step_sparsity.parquet", ["train_full"]),
    ("results/tables/dynamics_split.csv", ["comparison_tables"]),
    ("results/tables/pairs_layers.csv", ["pairs_table"]),
    ("results/figures/overlap.png", ["figure_overlap"]),
    ("results/findings.md", ["findings"]),
    (checks_of("tables"), ["check_inputs"]),
    ("/data/models/my-checkpoint", []),
])
def test_paths_map_to_the_rule_that_writes_them(path, rules):
    assert producer(path) == rules


def test_the_table_names_rules_that_exist():
    """Every rule PRODUCERS names is a rule of workflow/rules/*.smk (figures: one rule per FIGURES key)."""
    from subnet_rl.figures import FIGURES

    text = "\n".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    declared = {a or b for a, b in re.findall(r"^\s*(?:rule (\w+):|use rule \w+ as (\w+))", text, flags=re.M)}
    declared |= {f"figure_{f}" for f in FIGURES}
    named = {r for _, rules in PRODUCERS for r in rules.split("|") if "{" not in r}
    assert named <= declared, named - declared
    comparison = next(p for p, r in PRODUCERS if r == "comparison_tables")
    assert re.search(r"\(\?:(.*?)\)", comparison).group(1).split("|") == list(COMPARISON_TABLES)


def test_diff_pairs_asks_the_diff_rule_for_each_tables_checkpoints():
    sides = lambda w: {"before": f"results/checkpoints/base/{w.variant}", "after": f"{w.name}"}  # noqa: E731
    pairs = diff_pairs(["results/diff/full/grpo-a.parquet", "results/eval/x/full/grpo-a.parquet"], sides)
    assert pairs == {"results/diff/full/grpo-a.parquet": ["results/checkpoints/base/full", "grpo-a"]}


# -- old outputs survive a bad input -------------------------------------------------------------------

GATED = """
from subnet_rl.stage_outputs import checks_of

rule all:
    input: "results/tables/summary.csv"

rule check_inputs:
    input: lambda w: [f for f in getattr(rules, w.stage).input if f != checks_of(w.stage)]
    output: "results/tables/checks/{stage}.json"
    log: "results/logs/checks/{stage}.log"
    script: "check.py"

rule summary:
    input:
        diff="results/diff/full/run.parquet",
        checked=checks_of("summary"),
    output: "results/tables/summary.csv"
    log: "results/logs/summary.log"
    script: "summary.py"
"""
CHECK = """
import json
from subnet_rl.jobs import snakemake_job
from subnet_rl.stage_checks import check_stage_inputs

with snakemake_job(snakemake):
    summary = check_stage_inputs(snakemake.input)
    open(snakemake.output[0], "w").write(json.dumps(summary))
"""
SUMMARY = """
from subnet_rl.jobs import snakemake_job
from subnet_rl.stage_outputs import read_parquet

with snakemake_job(snakemake):
    read_parquet(snakemake.input.diff).describe().to_csv(snakemake.output[0])
"""


def run_snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    from test_workflow import local_env

    return subprocess.run([str(SNAKEMAKE), "--cores", "1", "--rerun-triggers", "mtime", "params", "input",
                           "--show-failed-logs", *args], cwd=workdir, capture_output=True, text=True, timeout=120,
                          env=local_env())


def throwaway(tmp_path: Path, snakefile: str) -> tuple[Path, Path]:
    (tmp_path / "Snakefile").write_text(snakefile)
    (tmp_path / "check.py").write_text(CHECK)
    (tmp_path / "summary.py").write_text(SUMMARY)
    diff = tmp_path / "results/diff/full/run.parquet"
    diff.parent.mkdir(parents=True)
    pd.DataFrame({"name": ["a", "b"], "role": "param", "status": "compared", "numel": [4, 4],
                  "unchanged_exact": [1, 2]}).to_parquet(diff, index=False)
    return diff, tmp_path / "results/tables/summary.csv"


@pytest.mark.e2e
def test_old_outputs_survive_a_corrupt_input_and_every_rerun_says_why(tmp_path):
    diff, output = throwaway(tmp_path, GATED)
    first = run_snakemake(tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    good = output.read_text()

    diff.write_bytes(b"PAR1 corrupt PAR1")  # newer than the summary: Snakemake wants to remake it
    for attempt in range(2):  # and keeps failing until the diff is fixed: nothing looks up to date
        failed = run_snakemake(tmp_path)
        assert failed.returncode != 0, failed.stdout + failed.stderr
        assert output.read_text() == good, f"attempt {attempt}: the old output was touched"
        log = (tmp_path / "results/logs/checks/summary.log").read_text()
        assert f"{diff.relative_to(tmp_path)} cannot be read as Parquet" in log
        assert "rule `diff`" in log
        assert "cannot be read as Parquet" in failed.stdout + failed.stderr  # --show-failed-logs

    diff.unlink()
    pd.DataFrame({"name": ["a"], "role": "param", "status": "compared", "numel": [8],
                  "unchanged_exact": [8]}).to_parquet(diff, index=False)
    fixed = run_snakemake(tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert output.read_text() != good


@pytest.mark.e2e
def test_update_flag_would_leave_stale_outputs_that_look_up_to_date(tmp_path):
    """Why the workflow gates with `check_inputs` instead of `update()`: Snakemake 9 restores an update()
    output after its job fails, then records it as made from the new inputs, so the next run plans
    nothing and the stale table stands. Should Snakemake change this, update() becomes an option."""
    snakefile = """
rule summary:
    input: diff="results/diff/full/run.parquet"
    output: update("results/tables/summary.csv")
    log: "results/logs/summary.log"
    script: "summary.py"
"""
    diff, output = throwaway(tmp_path, snakefile)
    assert run_snakemake(tmp_path).returncode == 0
    good = output.read_text()
    diff.write_bytes(b"PAR1 corrupt PAR1")
    failed = run_snakemake(tmp_path)
    assert failed.returncode != 0 and "Restored previous version" in failed.stdout + failed.stderr
    assert output.read_text() == good
    again = run_snakemake(tmp_path, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


# -- the real `tables` rule ------------------------------------------------------------------------------

@pytest.mark.e2e
def test_the_tables_rule_keeps_its_tables_when_a_diff_is_bad(tmp_path):
    """The project's Snakefile, its `check_inputs` and `tables` rules only (`--allowed-rules`), on upstream
    outputs made here for a one-run study: a corrupt diff, then one with a row missing, each fail at the
    check naming the diff and rule `diff`, and the tables of the good run stay as they were."""
    import yaml

    from test_workflow import TEST_CONFIG, local_env

    config = yaml.safe_load(TEST_CONFIG.read_text())
    config["runs"] = {"grpo-a": {**config["runs"]["grpo-a"], "subnetwork": False}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    torch.manual_seed(0)
    weights = {"model.layers.0.mlp.up_proj.weight": torch.randn(4, 3), "model.norm.weight": torch.ones(3)}
    init = checkpoint(tmp_path / "results/checkpoints/base/init", weights)
    start = checkpoint(tmp_path / "results/checkpoints/base/start", {**weights, "model.norm.weight": torch.zeros(3)})
    after = checkpoint(tmp_path / "results/checkpoints/full/grpo-a", weights)
    for trained in (start, after):
        (trained / "training.json").write_text(json.dumps({"log_history": [], "environment": {}}))
    (tmp_path / "results/diff/base").mkdir(parents=True)
    diff_checkpoints(init, start).to_parquet(tmp_path / "results/diff/base/start.parquet", index=False)
    diff = tmp_path / "results/diff/full/grpo-a.parquet"
    diff.parent.mkdir(parents=True)
    table = diff_checkpoints(start, after)
    table.to_parquet(diff, index=False)
    for variant, name in (("base", "init"), ("base", "start"), ("full", "grpo-a")):
        evals = tmp_path / f"results/eval/addition/{variant}/{name}.parquet"
        evals.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"correct": [True, False], "clipped": [False, False],
                      "correct_off_policy_form": [False, False]}).to_parquet(evals, index=False)
    overlap = tmp_path / "results/overlap/pairs.parquet"
    overlap.parent.mkdir(parents=True)
    pd.DataFrame(columns=["run_1", "run_2", "sparsity_1", "sparsity_2", "o1", "random_o1", "o2", "random_o2",
                          "jaccard", "random_jaccard"]).to_parquet(overlap, index=False)

    def tables():
        cmd = [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--configfile",
               str(tmp_path / "config.yaml"), "--cores", "1", "--allowed-rules", "check_inputs", "tables",
               "--rerun-triggers", "mtime", "params", "input", "--", "results/tables/sparsity.md"]
        return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=local_env())

    first = tables()
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    outputs = sorted((tmp_path / "results/tables").glob("*.*"))
    assert {p.name for p in outputs} >= {"sparsity.md", "sparsity.csv", "subnetwork.tex", "overlap.csv"}
    good = {p: p.read_bytes() for p in outputs}
    log = tmp_path / "results/logs/checks/tables.log"
    named = "results/diff/full/grpo-a.parquet"
    for bad, expected in (
        (b"PAR1 corrupt PAR1", [f"{named} cannot be read as Parquet"]),
        (table[table["name"] != "model.norm.weight"],
         [f"{named} does not match the checkpoints it compares, results/checkpoints/base/start and "
          "results/checkpoints/full/grpo-a", "no row for model.norm.weight"]),
    ):
        if isinstance(bad, bytes):
            diff.write_bytes(bad)
        else:
            bad.to_parquet(diff, index=False)
        failed = tables()
        assert failed.returncode != 0, failed.stdout[-3000:] + failed.stderr[-3000:]
        assert {p: p.read_bytes() for p in outputs} == good, "the old tables were removed or rewritten"
        text = log.read_text()
        assert all(e in text for e in expected) and "rule `diff`" in text, text
