"""Training dynamics (paper section 6) on hand-made checkpoints whose changed entries are known by construction.

Every change is 0.5 (or 1.0) on values of order 1, so the official criterion (bf16 values, |Δ| vs 1e-5) sees
it unambiguously; one entry moves by 1e-7, below bf16 resolution at 1.0, so it must count as unchanged.
Random runs check the tensor-by-tensor streaming against whole-model arrays computed with torch (bit for
bit), the use of the diff and mask stages' outputs, and that memory does not grow with the model.
"""

import tracemalloc

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from subnet_rl.atomic import write_parquet
from subnet_rl.diff import Criterion, compared_params, diff_checkpoints, sparsity
from subnet_rl.dynamics import changed_entries, snapshots_of, training_dynamics
from subnet_rl.mask_extraction import extract_masks
from subnet_rl.stage_outputs import StageOutputError

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
    (pair,) = compared_params(a, b)
    changed = changed_entries(pair, TOL)
    assert changed.dtype == bool and changed.shape == (12,)
    assert changed.nonzero()[0].tolist() == [2, 7]
    assert changed_entries(pair, Criterion.parse("exact")).nonzero()[0].tolist() == [2, 7, 11]
    # Chunks of 8 bytes (2 entries): the chunk masks land at their own positions of the tensor.
    assert changed_entries(pair, TOL, chunk_bytes=8).nonzero()[0].tolist() == [2, 7]
    assert not changed_entries(compared_params(a, a)[0], TOL).any()


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
    run = RunSpec.from_dict(dict(name="dyn", algorithm="sft", lr=1e-2, steps=3, seed=0, dataset="d", batch_size=4,
                                 save_every=1))
    out = tmp_path / "out"
    train(run, tmp_path / "start", paths["train"], out)
    snaps = snapshots_of(out)
    assert [step for step, _ in snaps] == [1, 2]
    assert [p.name for _, p in snaps] == ["step-000001", "step-000002"]
    assert not (out / "snapshots" / "step-000003").exists()
    rows, split = training_dynamics(tmp_path / "start", [*snaps, (3, out)], TOL)
    assert rows["step"].tolist() == [1, 2, 3]
    assert (rows["changed_since_previous"] > 0).all()  # lr 1e-2: every step moves something
    diff = diff_checkpoints(tmp_path / "start", out, [TOL])
    assert rows["sparsity"].iloc[-1] == pytest.approx(100 * sparsity(diff)["tol=1e-05"])
    assert split["final"] == pytest.approx(100 - rows["sparsity"].iloc[-1])
    assert split["never"] + split["back"] + split["final"] == pytest.approx(100.0)
    # As the workflow runs it: the diff and mask stages' outputs (their own writers) give the same numbers.
    write_parquet(diff, tmp_path / "diff.parquet")
    extract_masks(tmp_path / "start", out, TOL, tmp_path / "mask.safetensors")
    staged = training_dynamics(tmp_path / "start", [*snaps, (3, out)], TOL, tmp_path / "diff.parquet",
                               tmp_path / "mask.safetensors")
    assert staged[0].equals(rows) and staged[1] == split


SHAPES = {"model.embed_tokens.weight": (9, 6), "model.layers.0.mlp.up_proj.weight": (6, 11),
          "model.layers.0.input_layernorm.weight": (6,), "model.norm.weight": (7,)}


def random_run(tmp_path, snapshots: int = 3, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """start, `snapshots` snapshots and the final checkpoint (written as a run: snapshots under the final
    folder). Each step moves 40% of the entries by 1e-4..0.3 (some below bf16 resolution, most not) and
    puts 20% back exactly at their start value, so entries are never, back and final changed."""
    g = torch.Generator().manual_seed(seed)
    states = [{name: torch.rand(shape, generator=g) * 2 - 1 for name, shape in SHAPES.items()}]
    for _ in range(snapshots + 1):
        state = {}
        for name, w in states[-1].items():
            moves = torch.rand(w.shape, generator=g) < 0.4
            size = 10 ** (torch.rand(w.shape, generator=g) * 3.5 - 4) * torch.sign(torch.rand(w.shape, generator=g) - 0.5)
            w = w + torch.where(moves, size, torch.zeros_like(w))
            state[name] = torch.where(torch.rand(w.shape, generator=g) < 0.2, states[0][name], w)
        states.append(state)
    checkpoint(tmp_path / "start", states[0])
    checkpoint(tmp_path / "final", states[-1])
    for step, state in enumerate(states[1:-1], 1):
        checkpoint(tmp_path / "final" / "snapshots" / f"step-{step:06d}", state)
    return states


def official_changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> np.ndarray:
    """The whole model's changed entries as the paper's script decides them: Δ of the bf16 casts, in bf16,
    not isclose to 0 at atol 1e-5. Torch, not the diff engine: an independent reference."""
    parts = []
    for name in sorted(before):
        delta = after[name].bfloat16() - before[name].bfloat16()
        parts.append(~torch.isclose(delta, torch.zeros_like(delta), rtol=0, atol=1e-5).reshape(-1).numpy())
    return np.concatenate(parts)


def whole_array_dynamics(states: list[dict[str, torch.Tensor]]) -> tuple[list[dict], dict]:
    """Training dynamics the straightforward way: whole-model boolean arrays per checkpoint."""
    changed = [official_changed(states[0], s) for s in states[1:]]
    moved = [official_changed(a, b) for a, b in zip(states, states[1:])]
    ever = np.logical_or.reduce(changed)
    rows = [{"step": step, "sparsity": 100.0 * (1 - c.mean()), "changed_since_previous": 100.0 * m.mean()}
            for step, (c, m) in enumerate(zip(changed, moved), 1)]
    split = {"never": 100.0 * (~ever).mean(), "back": 100.0 * (ever & ~changed[-1]).mean(),
             "final": 100.0 * changed[-1].mean(), "entries": ever.size}
    return rows, split


@pytest.mark.parametrize("stage_outputs", ["none", "diff and mask", "mask of another criterion"])
def test_streaming_equals_the_whole_array_computation(tmp_path, stage_outputs):
    """Tensor by tensor, in 16-byte chunks, from the checkpoints alone or with the diff and mask stages'
    outputs: the same numbers, to the last bit, as whole-model arrays. A mask of another criterion than
    the dynamics' is not the final set: the final checkpoint is compared instead."""
    states = random_run(tmp_path)
    expected_rows, expected_split = whole_array_dynamics(states)
    assert 0 < expected_split["never"] and 0 < expected_split["back"] and 0 < expected_split["final"]
    start, final = tmp_path / "start", tmp_path / "final"
    diff = mask = None
    if stage_outputs != "none":
        diff, mask = tmp_path / "diff.parquet", tmp_path / "mask.safetensors"
        write_parquet(diff_checkpoints(start, final, [TOL]), diff)
        extract_masks(start, final, TOL if stage_outputs == "diff and mask" else Criterion("exact"), mask)
    points = [*snapshots_of(final), (len(states) - 1, final)]
    rows, split = training_dynamics(start, points, TOL, diff, mask, chunk_bytes=16, workers=2)
    assert rows.to_dict("records") == expected_rows
    assert split == expected_split


def test_the_mask_at_the_dynamics_criterion_is_the_final_set(tmp_path):
    """The run's mask is read, not recomputed: a mask that (wrongly) holds snapshot 1's changes makes the
    final share snapshot 1's; the same mask at another criterion is ignored."""
    states = random_run(tmp_path)
    start, final = tmp_path / "start", tmp_path / "final"
    points = [*snapshots_of(final), (len(states) - 1, final)]
    snapshot = points[0][1]
    extract_masks(start, snapshot, TOL, tmp_path / "tol.safetensors")
    extract_masks(start, snapshot, Criterion("exact"), tmp_path / "exact.safetensors")
    _, from_mask = training_dynamics(start, points, TOL, final_mask=tmp_path / "tol.safetensors")
    assert from_mask["final"] == 100.0 * official_changed(states[0], states[1]).mean()
    _, ignored = training_dynamics(start, points, TOL, final_mask=tmp_path / "exact.safetensors")
    assert ignored == whole_array_dynamics(states)[1]


def test_a_diff_table_of_another_pair_is_refused(tmp_path):
    """The final row is the diff table's count: a table that disagrees with the final checkpoint (another
    run's, a stale one) fails the job, naming the file and the rule that writes it."""
    random_run(tmp_path)
    start, final = tmp_path / "start", tmp_path / "final"
    points = [*snapshots_of(final), (4, final)]
    write_parquet(diff_checkpoints(start, points[0][1], [TOL]), tmp_path / "diff.parquet")
    with pytest.raises(StageOutputError, match="diff.parquet counts .* entries changed at tol=1e-05"):
        training_dynamics(start, points, TOL, final_diff=tmp_path / "diff.parquet")


def uniform_run(tmp_path, tensors: int, numel: int = 2**16) -> list[tuple[int, object]]:
    """A run of `tensors` equal fp32 tensors: start, two snapshots and the final checkpoint."""
    g = torch.Generator().manual_seed(tensors)
    state = {f"model.layers.{i}.mlp.up_proj.weight": torch.rand(numel, generator=g) for i in range(tensors)}
    states = [state]
    for _ in range(3):
        states.append({n: w + (torch.rand(numel, generator=g) < 0.3) * 0.5 for n, w in states[-1].items()})
    checkpoint(tmp_path / "start", states[0])
    checkpoint(tmp_path / "final", states[3])
    for step in (1, 2):
        checkpoint(tmp_path / "final" / "snapshots" / f"step-{step:06d}", states[step])
    return [*snapshots_of(tmp_path / "final"), (3, tmp_path / "final")]


def test_memory_is_bounded_by_a_tensor_not_the_model(tmp_path):
    """Peak traced memory (NumPy's buffers included) for 4x the tensors stays ~flat: whole-model arrays
    (changed, ever, moved) would make it grow ~4x. Small chunks, so the readers' buffers do not hide it."""
    runs = {n: uniform_run(tmp_path / str(n), n) for n in (4, 16)}

    def peak(n: int) -> int:
        tracemalloc.start()
        try:
            training_dynamics(tmp_path / str(n) / "start", runs[n], TOL, chunk_bytes=2**14, workers=1)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(4)  # first call: imports and caches, not the dynamics' own memory
    small, large = peak(4), peak(16)
    assert large < 1.5 * small, f"peak {large} B with 16 tensors vs {small} B with 4"
