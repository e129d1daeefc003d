"""Training dynamics (paper section 6) on hand-made checkpoints whose changed entries are known by construction.

Every change is 0.5 (or 1.0) on values of order 1, so the official criterion (bf16 values, |Δ| vs 1e-5) sees
it unambiguously; one entry moves by 1e-7, below bf16 resolution at 1.0, so it must count as unchanged.
"""

import pytest
import torch
from safetensors.torch import save_file

from subnet_rl.diff import Criterion, diff_checkpoints, sparsity
from subnet_rl.dynamics import changed_entries, snapshots_of, training_dynamics

TOL = Criterion.parse("tol=1e-05")
UP, NORM = "model.layers.0.mlp.up_proj.weight", "model.norm.weight"
TOTAL = 4 * 5 + 5


def start_tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {UP: torch.rand(4, 5, generator=g) * 2 - 1, NORM: torch.ones(5)}


def checkpoint(folder, tensors: dict[str, torch.Tensor]):
    """A checkpoint folder holding one model.safetensors (no config: the diff engine does not need one)."""
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, folder / "model.safetensors")
    return folder


def moved(start: dict, up: dict[int, float] = {}, norm: dict[int, float] = {}) -> dict[str, torch.Tensor]:
    """The start tensors with the given flat entries shifted by the given amounts."""
    out = {k: v.clone() for k, v in start.items()}
    for name, shifts in ((UP, up), (NORM, norm)):
        flat = out[name].view(-1)
        for index, shift in shifts.items():
            flat[index] += shift
    return out


@pytest.fixture
def history(tmp_path):
    """start -> step 2 -> step 4 -> step 6 (final). Entries (UP flat index u*, NORM index n*):

    u0: +0.5 at 2, +1.0 at 4 and 6 (changed at every step, moved again between 2 and 4)
    u1: +0.5 from step 2 on; u2, u3: +0.5 at step 2, exactly back at 4; n0: +0.5 at 2, back at 4
    u4: +0.5 at 4 only (back at 6); u5, u6: +0.5 from step 4 on
    u7, u8, u9, n1: +0.5 at the final step only; n2: +1e-7 at the end (not a change under tol=1e-05)
    """
    start = start_tensors()
    steps = {
        2: moved(start, {0: 0.5, 1: 0.5, 2: 0.5, 3: 0.5}, {0: 0.5}),
        4: moved(start, {0: 1.0, 1: 0.5, 4: 0.5, 5: 0.5, 6: 0.5}),
        6: moved(start, {0: 1.0, 1: 0.5, 5: 0.5, 6: 0.5, 7: 0.5, 8: 0.5, 9: 0.5}, {1: 0.5, 2: 1e-7}),
    }
    start_path = checkpoint(tmp_path / "start", start)
    final = checkpoint(tmp_path / "final", steps[6])
    snaps = [(step, checkpoint(final / "snapshots" / f"step-{step:06d}", steps[step])) for step in (2, 4)]
    return start_path, snaps, final


def test_changed_entries_marks_exactly_the_moved_entries(tmp_path):
    """One tensor, so positions are unambiguous: the 0.5 moves are changes, the 1e-7 move is not."""
    w = torch.linspace(-1, 1, 12)
    after = w.clone()
    after[[2, 7]] += 0.5
    after[11] += 1e-7  # w[11] == 1.0: 1 + 1e-7 rounds to 1.0 in bf16
    assert w[11] == 1.0
    a = checkpoint(tmp_path / "a", {"w": w})
    b = checkpoint(tmp_path / "b", {"w": after})
    changed = changed_entries(a, b, TOL)
    assert changed.dtype == bool and changed.shape == (12,)
    assert changed.nonzero()[0].tolist() == [2, 7]
    assert changed_entries(a, b, Criterion.parse("exact")).nonzero()[0].tolist() == [2, 7, 11]
    assert not changed_entries(a, a, TOL).any()


def test_per_step_sparsity_and_changes_since_previous(history):
    """Hand counts (of 25 entries): changed vs start 5, 5, 8; changed vs the previous checkpoint 5
    (vs start), 7 (u0, u2-u6, n0), 5 (u4, u7-u9, n1)."""
    start, snaps, final = history
    rows, _ = training_dynamics(start, [*snaps, (6, final)], TOL)
    assert rows["step"].tolist() == [2, 4, 6]
    assert rows["sparsity"].tolist() == pytest.approx([100 * 20 / 25, 100 * 20 / 25, 100 * 17 / 25])
    assert rows["changed_since_previous"].tolist() == pytest.approx([100 * 5 / 25, 100 * 7 / 25, 100 * 5 / 25])


def test_never_back_final_split_sums_to_the_total(history):
    """Ever changed: u0-u9, n0, n1 (12); final: u0, u1, u5-u9, n1 (8); back: u2, u3, u4, n0 (4);
    never: the other 13 (n2's sub-resolution move included). The three shares sum to 100."""
    start, snaps, final = history
    _, split = training_dynamics(start, [*snaps, (6, final)], TOL)
    assert split["entries"] == TOTAL
    assert split["never"] == pytest.approx(100 * 13 / 25)
    assert split["back"] == pytest.approx(100 * 4 / 25)
    assert split["final"] == pytest.approx(100 * 8 / 25)
    assert split["never"] + split["back"] + split["final"] == pytest.approx(100.0)


def test_only_the_final_checkpoint_leaves_nothing_back(history):
    """Without snapshots nothing can be seen leaving and coming back: back is 0, final is the sparsity's
    complement, and the row's changes since the start are the changes since 'previous'."""
    start, _, final = history
    rows, split = training_dynamics(start, [(6, final)], TOL)
    assert rows.to_dict("records") == [{"step": 6, "sparsity": pytest.approx(68.0),
                                        "changed_since_previous": pytest.approx(32.0)}]
    assert split == {"never": pytest.approx(68.0), "back": 0.0, "final": pytest.approx(32.0), "entries": TOTAL}


def test_snapshots_are_found_in_step_order(tmp_path):
    """Folders step-N under snapshots/, sorted by step number (step-9 before step-000010), files ignored."""
    run = tmp_path / "run"
    for name in ("step-000010", "step-000002", "step-9"):
        (run / "snapshots" / name).mkdir(parents=True)
    (run / "snapshots" / "step-000003").write_text("not a folder")
    found = snapshots_of(run)
    assert found == [(2, run / "snapshots" / "step-000002"), (9, run / "snapshots" / "step-9"),
                     (10, run / "snapshots" / "step-000010")]
    (tmp_path / "bare").mkdir()
    assert snapshots_of(tmp_path / "bare") == []
    assert snapshots_of(tmp_path / "missing") == []


def test_no_checkpoints_is_an_error(history):
    start, _, _ = history
    with pytest.raises(ValueError, match="at least the final checkpoint"):
        training_dynamics(start, [], TOL)


def test_snapshots_of_a_real_training_run(tmp_path):
    """save_every=1 over 3 SFT steps saves steps 1 and 2 (step 3 is the checkpoint itself); the dynamics
    read them like any checkpoint, and the final row agrees with the diff engine's own count."""
    from subnet_rl.config import RunSpec
    from subnet_rl.data import synthetic_addition, write_dataset
    from subnet_rl.models import TinyModelSpec, build_char_tokenizer, build_tiny_model, save_checkpoint
    from subnet_rl.tasks import addition as task
    from subnet_rl.training import train

    tokenizer = build_char_tokenizer(task.ALPHABET)
    spec = TinyModelSpec(hidden_size=16, intermediate_size=32, num_layers=1, num_heads=2, num_kv_heads=1)
    save_checkpoint(build_tiny_model(spec, tokenizer, seed=0), tokenizer, tmp_path / "start")
    paths = {"train": tmp_path / "train.parquet", "test": tmp_path / "test.parquet"}
    write_dataset(synthetic_addition(2, 64, 8, seed=0), paths)
    run = RunSpec(name="dyn", algorithm="sft", lr=1e-2, steps=3, seed=0, dataset="d", batch_size=4, save_every=1)
    out = tmp_path / "out"
    train(run, tmp_path / "start", paths["train"], out)
    snaps = snapshots_of(out)
    assert [step for step, _ in snaps] == [1, 2]
    assert [p.name for _, p in snaps] == ["step-000001", "step-000002"]
    assert not (out / "snapshots" / "step-000003").exists()
    rows, split = training_dynamics(tmp_path / "start", [*snaps, (3, out)], TOL)
    assert rows["step"].tolist() == [1, 2, 3]
    assert (rows["changed_since_previous"] > 0).all()  # lr 1e-2: every step moves something
    official = sparsity(diff_checkpoints(tmp_path / "start", out, [TOL]))["tol=1e-05"]
    assert rows["sparsity"].iloc[-1] == pytest.approx(100 * official)
    assert split["final"] == pytest.approx(100 - rows["sparsity"].iloc[-1])
    assert split["never"] + split["back"] + split["final"] == pytest.approx(100.0)
