"""Subnetwork masks under torch FSDP2 (`fully_shard`), two processes over gloo on CPU (issue 15, item 2).

accelerate turns FSDP on only for GPUs, so the Trainer path cannot run here; this runs the project's mask
code on really sharded parameters (DTensors, whose tensor hooks never fire) with AdamW and clipping.
"""

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
