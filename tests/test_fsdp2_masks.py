"""Subnetwork masks under torch FSDP2 (`fully_shard`), two processes over gloo on CPU (issue 15, item 2).

accelerate turns FSDP on only for GPUs, so the Trainer path cannot run here; this runs the project's mask
code on really sharded parameters (DTensors, whose tensor hooks never fire) with AdamW and clipping.
"""

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from subnet_rl.masks import save_masks
from subnet_rl.models import build_char_tokenizer, build_tiny_model
from subnet_rl.tasks import addition

sys.path.insert(0, str(Path(__file__).parent))
from fsdp2_worker import SPEC  # noqa: E402

WORKER = Path(__file__).parent / "fsdp2_worker.py"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*args: str, ranks: int | None = None) -> str:
    launcher = [] if ranks is None else ["-m", "torch.distributed.run", "--nproc_per_node", str(ranks),
                                         "--master_addr", "127.0.0.1", "--master_port", str(_port())]
    done = subprocess.run([sys.executable, *launcher, str(WORKER), *args], capture_output=True, text=True,
                          timeout=600, env={"OMP_NUM_THREADS": "1", **__import__("os").environ})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done.stdout


@pytest.fixture(scope="module")
def start_and_mask(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdp2")
    model = build_tiny_model(SPEC, build_char_tokenizer(addition.ALPHABET), seed=0)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    g = torch.Generator().manual_seed(7)
    masks = {n: torch.rand(t.shape, generator=g) < 0.3 for n, t in start.items()}
    save_masks(masks, root / "mask.safetensors", "tol=1e-05")
    return root, start, masks


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_fsdp2_sharded_masks_keep_frozen_entries_and_match_the_unsharded_run(start_and_mask, weight_decay):
    root, start, masks = start_and_mask
    mask = str(root / "mask.safetensors")
    sharded, reference = root / f"sharded-{weight_decay}.safetensors", root / f"reference-{weight_decay}.safetensors"
    log = _run("--mask", mask, "--out", str(sharded), "--weight-decay", str(weight_decay), ranks=2)
    assert "rank 1/2: done" in log and "rank 0/2: done" in log
    _run("--mask", mask, "--out", str(reference), "--weight-decay", str(weight_decay), "--reference")
    after, ref = load_file(sharded), load_file(reference)
    moved = 0
    for name, before in start.items():
        frozen = ~masks[name]
        assert torch.equal(after[name][frozen].view(torch.int32), before[frozen].view(torch.int32)), name
        assert torch.equal(ref[name][frozen].view(torch.int32), before[frozen].view(torch.int32)), name
        torch.testing.assert_close(after[name], ref[name], rtol=1e-4, atol=1e-5)
        moved += int((after[name][masks[name]] != before[masks[name]]).sum())
    assert moved > 0.9 * sum(int(m.sum()) for m in masks.values())  # the subnetwork trained
    # Mask state per rank: one bool per local entry, plus start copies only where weight decay could move
    # a frozen entry.
    states = [int(line.split()[4]) for line in log.splitlines() if "mask state" in line]
    params = sum(t.numel() for t in start.values())
    assert len(states) == 2 and sum(states) >= params
    if weight_decay == 0:
        assert sum(states) == params  # 1 byte per parameter, split over the ranks


def test_the_same_sharded_run_without_masks_moves_frozen_entries(start_and_mask):
    """Control: without the mask, FSDP2 training moves the entries the test above finds frozen."""
    root, start, masks = start_and_mask
    out = root / "unmasked.safetensors"
    _run("--mask", str(root / "mask.safetensors"), "--out", str(out), "--no-mask", ranks=2)
    after = load_file(out)
    moved = sum(int((after[n][~masks[n]] != start[n][~masks[n]]).sum()) for n in start)
    assert moved > 0.9 * sum(int((~m).sum()) for m in masks.values())


def _copies(log: str) -> dict[int, int]:
    """Each rank's bytes of the bf16 copy, from the ranks' output (lines of two processes may interleave)."""
    return {int(rank): int(n) for rank, n in re.findall(r"rank (\d+): step_sparsity copy (\d+) bytes", log)}


def test_step_sparsity_over_fsdp2_shards_equals_the_count_of_the_gathered_weights(start_and_mask, tmp_path):
    """Two ranks count the bf16 changes of their own shards and sum them (one all_reduce per step): each step's
    count equals plain torch's count over the full weights rank 0 gathered after that step, and the count
    of the project's recorder in one process over those same weights. The bf16 copy is split over the ranks."""
    from subnet_rl.step_sparsity import StepSparsity

    root, start, _ = start_and_mask
    folder = tmp_path / "steps"
    log = _run("--mask", str(root / "mask.safetensors"), "--out", str(tmp_path / "out.safetensors"), "--no-mask",
               "--step-sparsity", str(folder), ranks=2)
    records = json.loads((folder / "records.json").read_text())
    states = [load_file(folder / f"step-{step}.safetensors") for step in range(len(records) + 1)]
    total = sum(t.numel() for t in start.values())
    bits = [{n: t.to(torch.bfloat16).view(torch.int16) for n, t in s.items() if n in start} for s in states]
    expected = [[step, sum(int((bits[step][n] != bits[step - 1][n]).sum()) for n in start), total]
                for step in range(1, len(states))]
    assert records == expected and len(records) == 4
    assert all(c > 0 for _, c, _ in records) and min(c for _, c, _ in records) < total  # not all, not none
    single = build_tiny_model(SPEC, build_char_tokenizer(addition.ALPHABET), seed=0)
    single.load_state_dict(states[0], strict=False)
    recorder = StepSparsity(list(start))
    recorder.bind(single)
    for step, state in enumerate(states[1:], start=1):
        single.load_state_dict(state, strict=False)
        recorder.record(step)
    assert recorder.records == records
    copies = _copies(log)
    assert len(copies) == 2 and sum(copies.values()) == 2 * total and min(copies.values()) > 0


def test_step_sparsity_of_replicas_counts_each_entry_once(start_and_mask, tmp_path):
    """DDP's case: every rank holds the whole, identical weights; each counts its own copy and nothing is
    summed over the ranks, so two replicas record what one process taking the same steps records."""
    root, start, _ = start_and_mask
    common = ["--mask", str(root / "mask.safetensors"), "--no-mask"]
    log = _run(*common, "--out", str(tmp_path / "replicas.safetensors"), "--replicated", "--step-sparsity",
               str(tmp_path / "replicas"), ranks=2)
    _run(*common, "--out", str(tmp_path / "one.safetensors"), "--reference", "--step-sparsity", str(tmp_path / "one"))
    replicas = json.loads((tmp_path / "replicas" / "records.json").read_text())
    assert replicas == json.loads((tmp_path / "one" / "records.json").read_text())
    assert replicas[0][2] == sum(t.numel() for t in start.values()) and replicas[-1][1] > 0
    assert _copies(log) == {0: 2 * replicas[0][2], 1: 2 * replicas[0][2]}  # a whole copy per replica
