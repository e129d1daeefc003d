"""Step-level sparsity (issue 17, item 8): the share of entries whose bf16 value changed in each optimizer step,
recorded during real TRL training on the tiny model and held against independent counts: the diff engine
over per-step snapshots, and plain torch over the weights each step leaves."""

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

import subnet_rl.training as training
from subnet_rl.config import RunSpec
from subnet_rl.diff import Criterion, diff_checkpoints
from subnet_rl.models import load_checkpoint, save_checkpoint
from subnet_rl.stage_outputs import StageOutputError
from subnet_rl.step_sparsity import StepSparsity, compared_names
from subnet_rl.step_sparsity_records import COLUMNS, FILE, records_frame
from subnet_rl.step_sparsity_table import compared_entries, read_records, step_sparsity_tables
from subnet_rl.training import train
from test_training import setup as training_setup

BITWISE, EXACT = Criterion.parse("bf16_bitwise"), Criterion.parse("exact")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The tiny model, data and a half-density mask of tests/test_training.py."""
    root, train_data, start, masks = training_setup.__wrapped__(tmp_path_factory)
    return root, train_data, start, masks


def _spec(**kw) -> RunSpec:
    return RunSpec.from_dict({"name": "steps", "algorithm": "sft", "lr": 3e-4, "steps": 4, "seed": 0, "dataset": "d",
                              "batch_size": 4, **kw})


def _changed(before, after, criterion: Criterion = BITWISE) -> tuple[int, int]:
    """(entries changed, entries compared) between two checkpoints, by the diff engine."""
    diff = diff_checkpoints(before, after, [criterion])
    params = diff[(diff["role"] == "param") & (diff["status"] == "compared")]
    return int((params["numel"] - params[criterion.column]).sum()), int(params["numel"].sum())


def _per_step(start, out, steps: int, criterion: Criterion = BITWISE) -> list[tuple[int, int]]:
    """Changes between consecutive checkpoints: start, the save_every=1 snapshots, the run's checkpoint."""
    points = [start, *(out / "snapshots" / f"step-{s:06d}" for s in range(1, steps)), out]
    return [_changed(a, b, criterion) for a, b in zip(points, points[1:])]


@pytest.fixture(scope="module")
def recorded(setup, tmp_path_factory):
    """An fp32 AdamW run of 4 optimizer steps of 2 micro-batches each, recording its steps, with snapshots."""
    root, train_data, _, _ = setup
    out = tmp_path_factory.mktemp("recorded") / "run"
    spec = _spec(step_sparsity=True, save_every=1, gradient_accumulation_steps=2)
    train(spec, root / "start", train_data, out)
    return spec, out


def test_recorded_counts_equal_the_diff_engines_count_between_per_step_snapshots(setup, recorded):
    root, _, _, _ = setup
    spec, out = recorded
    df = pd.read_parquet(out / FILE)
    assert list(df.columns) == list(COLUMNS)
    assert df["step"].tolist() == [1, 2, 3, 4]  # one record per optimizer step, not per micro-batch
    expected = _per_step(root / "start", out, spec.steps)
    assert list(zip(df["changed"], df["total"])) == expected
    assert 0 < df["changed"].min() and df["changed"].max() < df["total"].iloc[0]  # some entries, not all
    assert df["changed_pct"].tolist() == pytest.approx([100 * c / t for c, t in expected])
    # the total is the diff's compared entries: the parameters, the tied embedding once
    assert df["total"].iloc[0] == _changed(root / "start", out)[1] == sum(
        t.numel() for t in load_file(root / "start" / "model.safetensors").values())


def test_the_recorder_changes_no_bit_of_training_and_off_leaves_no_file(setup, recorded, tmp_path):
    root, train_data, _, _ = setup
    spec, on = recorded
    off = tmp_path / "off"
    train(spec.replaced(step_sparsity=False), root / "start", train_data, off)
    assert not (off / FILE).exists() and (on / FILE).exists()
    assert (off / "model.safetensors").read_bytes() == (on / "model.safetensors").read_bytes()
    for step in (1, 2, 3):
        name = f"snapshots/step-{step:06d}/model.safetensors"
        assert (off / name).read_bytes() == (on / name).read_bytes()


def test_with_bf16_weights_every_stored_change_is_visible(setup, tmp_path):
    root, train_data, _, _ = setup
    out = tmp_path / "bf16"
    train(_spec(precision="bf16", step_sparsity=True, save_every=1), root / "start", train_data, out)
    df = pd.read_parquet(out / FILE)
    assert (df["changed"] > 0).all()
    # from the bf16 start on, a stored change is a change of the bf16 value, and the reverse
    exact = _per_step(out / "snapshots" / "step-000001", out, 4, EXACT)[1:]
    assert df["changed"].tolist()[1:] == [c for c, _ in exact]
    assert list(zip(df["changed"], df["total"])) == _per_step(root / "start", out, 4)


def test_sgd_updates_below_half_an_ulp_are_invisible_though_the_fp32_weights_move(setup, tmp_path):
    """A start on the bf16 grid, every entry at least 2^-10 in size, and plain SGD at lr 2^-22 with clipping
    at 1: no entry moves by half a bf16 ulp (|w| 2^-9 or more) in 3 steps, so no step changes a bf16 value,
    while the fp32 weights do move."""
    root, train_data, _, _ = setup
    model, tokenizer = load_checkpoint(root / "start")
    with torch.no_grad():
        for param in model.parameters():
            grid = param.to(torch.bfloat16).float()
            param.copy_(torch.where(grid.abs() < 2**-10, torch.where(grid < 0, -(2**-10), 2**-10), grid))
    save_checkpoint(model, tokenizer, tmp_path / "grid")
    out = tmp_path / "sgd"
    train(_spec(optimizer="sgd", lr=2**-22, steps=3, step_sparsity=True), tmp_path / "grid", train_data, out)
    df = pd.read_parquet(out / FILE)
    assert df["step"].tolist() == [1, 2, 3] and df["changed"].tolist() == [0, 0, 0]
    assert _changed(tmp_path / "grid", out, EXACT)[0] > 0  # the fp32 weights moved, below bf16's resolution


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_the_copy_follows_the_parameters_and_the_counts_match_the_snapshots(setup, tmp_path):
    """Built on the CPU, trained on the GPU the Trainer moves the model to: the copy is taken there."""
    root, train_data, _, _ = setup
    out = tmp_path / "gpu"
    summary = train(_spec(step_sparsity=True, save_every=1), root / "start", train_data, out)
    assert summary["environment"]["device"].startswith("cuda")
    df = pd.read_parquet(out / FILE)
    assert list(zip(df["changed"], df["total"])) == _per_step(root / "start", out, 4)


class BitsProbe(TrainerCallback):
    """At the end of each step, counts the entries whose bf16 bits differ from the step before (plain torch)."""

    def __init__(self, names):
        self.names, self.before, self.counts, self.frozen_changed = names, None, [], 0

    def _bits(self, model):
        params = dict(model.named_parameters())
        return {n: params[n].detach().to(torch.bfloat16).view(torch.int16).clone() for n in self.names}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = self._bits(model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        now = self._bits(model)
        self.counts.append(sum(int((now[n] != self.before[n]).sum()) for n in self.names))
        self.before = now


def test_a_subnetwork_run_counts_after_frozen_entries_are_restored(setup, tmp_path, monkeypatch):
    """With weight decay the optimizer moves frozen entries and the subnetwork callback puts them back at
    `on_optimizer_step`; the recorder counts at step end, after that, wherever it sits among the callbacks
    (here first, before the subnetwork callback)."""
    root, train_data, _, masks = setup
    probe = BitsProbe(compared_names(root / "start"))
    build = training.build_trainer
    monkeypatch.setattr(training, "build_trainer", lambda spec, model, tok, data, out, callbacks: build(
        spec, model, tok, data, out, [*reversed(callbacks), probe]))
    out = tmp_path / "subnet"
    summary = train(_spec(lr=1e-2, weight_decay=0.1, step_sparsity=True), root / "start", train_data, out,
                    mask=root / "mask.safetensors")
    df = pd.read_parquet(out / FILE)
    assert df["changed"].tolist() == probe.counts and min(probe.counts) > 0
    assert (df["changed"] <= summary["subnetwork"]["trainable"]).all()
    start = load_file(root / "start" / "model.safetensors")
    after = load_file(out / "model.safetensors")
    assert all(torch.equal(after[n][~masks[n]], start[n][~masks[n]]) for n in start)


def test_a_resume_without_the_earlier_records_is_refused():
    recorder = StepSparsity(["w"], records=[[1, 3, 10]])
    state = type("State", (), {"global_step": 2})()
    with pytest.raises(ValueError, match=r"starts at step 2 with records of steps 1..1 .*resume folder"):
        recorder.on_train_begin(None, state, None, model=torch.nn.Linear(2, 2))


def test_a_checkpoint_tensor_the_model_lacks_is_named():
    with pytest.raises(ValueError, match=r"\['lm_head.weight'\] are not parameters .*step_sparsity: false"):
        StepSparsity(["weight", "lm_head.weight"]).bind(torch.nn.Linear(2, 2))


def test_nan_and_signed_zero_compare_by_their_bits():
    layer = torch.nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.0, 1.0, float("nan"), 2.0]]))
    recorder = StepSparsity(["weight"])
    recorder.bind(layer)
    assert recorder.record(1) == [1, 0, 4]  # an unchanged NaN is unchanged
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[-0.0, 1.0 + 2**-12, float("nan"), 2.5]]))
    assert recorder.record(2) == [2, 2, 4]  # -0 vs +0 changed; 1 + 2^-12 rounds back to 1 in bf16
    assert recorder.state_bytes() == 4 * 2


# -- the tables ----------------------------------------------------------------------------------------

def _records_in(folder, records):
    folder.mkdir(parents=True)
    records_frame(records).to_parquet(folder / FILE, index=False)
    return folder


def test_tables_from_records(tmp_path):
    runs = {"grpo-a": {"algorithm": "grpo", "precision": "fp32", "lr": 1e-6, "steps": 4},
            "sft-a": {"algorithm": "sft", "precision": "bf16", "lr": 1e-5, "steps": 2}}
    grpo = _records_in(tmp_path / "results/checkpoints/full/grpo-a", [[1, 10, 1000], [2, 0, 1000], [3, 30, 1000],
                                                                      [4, 0, 1000]])
    sft = _records_in(tmp_path / "results/checkpoints/full/sft-a", [[1, 500, 1000], [2, 250, 1000]])
    tables = step_sparsity_tables({"grpo-a": read_records(grpo, 4, 1000), "sft-a": read_records(sft, 2, 1000)}, runs)
    steps = tables["step_sparsity"]
    assert list(steps.columns) == ["run", "algorithm", "precision", "lr", "step", "changed", "entries", "% changed"]
    assert steps["run"].tolist() == ["grpo-a"] * 4 + ["sft-a"] * 2
    assert steps["% changed"].tolist() == pytest.approx([1.0, 0.0, 3.0, 0.0, 50.0, 25.0])
    summary = tables["step_sparsity_summary"].set_index("run")
    assert summary.loc["grpo-a", ["mean % changed", "median % changed", "max % changed"]].tolist() == pytest.approx(
        [1.0, 0.5, 3.0])
    assert summary.loc["grpo-a", "steps with no visible change (%)"] == 50.0
    assert summary.loc["sft-a", "steps with no visible change (%)"] == 0.0
    assert (summary.loc["sft-a", "steps"], summary.loc["sft-a", "entries"]) == (2, 1000)
    assert summary.loc["sft-a", "precision"] == "bf16"
    empty = step_sparsity_tables({}, runs)
    assert empty["step_sparsity"].empty and list(empty["step_sparsity"].columns) == list(steps.columns)
    assert empty["step_sparsity_summary"].empty


def test_bad_records_name_the_file_and_the_training_rule(tmp_path):
    short = _records_in(tmp_path / "results/checkpoints/full/short", [[1, 1, 10], [2, 1, 10]])
    with pytest.raises(StageOutputError, match=r"steps \[1, 2\] \(2 rows\), not one of each step 1..3.*`train_full`"):
        read_records(short, 3, 10)
    over = _records_in(tmp_path / "results/checkpoints/full/over", [[1, 11, 10]])
    with pytest.raises(StageOutputError, match=r"outside 0..total at steps \[1\].*delete the folder"):
        read_records(over, 1, 10)
    with pytest.raises(StageOutputError, match=r"counts \[10\] entries per step where the run's diff table "
                                               r"compares 12 .*`train_full`"):
        read_records(short, 2, 12)
    with pytest.raises(StageOutputError, match=r"does not exist.*`train_full`"):
        read_records(tmp_path / "results/checkpoints/full/none", 1, 10)


def test_the_records_total_is_the_diff_tables_compared_entries(setup, recorded):
    """What the table stage holds each record against: the run's diff table's parameter entries."""
    root, _, _, _ = setup
    _, out = recorded
    diff = diff_checkpoints(root / "start", out, [BITWISE])
    assert read_records(out, 4, compared_entries(diff))["total"].iloc[0] == compared_entries(diff) > 0


def test_training_code_takes_in_the_recorder_but_not_the_diff_engine():
    """The recorder is part of every training job's code hash; the diff package is not (an edit of the diff
    kernel must not retrain every run), though the recorder uses the diff's list of compared parameters."""
    from pathlib import Path

    from subnet_rl.code_version import PACKAGE_DIR, code_files

    hashed = {p.relative_to(PACKAGE_DIR).as_posix() for p in code_files(Path(__file__).parents[1] / "workflow" /
                                                                         "scripts" / "train.py")
              if p.is_relative_to(PACKAGE_DIR)}
    assert {"step_sparsity.py", "step_sparsity_records.py", "training.py"} <= hashed
    assert not {p for p in hashed if p.startswith("diff/") or p == "step_sparsity_table.py"}
