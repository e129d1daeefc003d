"""One rank of the torch-level FSDP2 subnetwork test (tests/test_fsdp2_masks.py), or the unsharded reference.

Under `torch.distributed.run --nproc_per_node 2` (gloo on CPU): the tiny model is sharded with
`fully_shard` per decoder layer and at the root, the project's `SubnetworkMask` binds to the sharded
parameters, and AdamW with gradient clipping takes a few steps, each rank on its own half of every batch.
Rank 0 gathers the full weights and saves them. Without the launcher (`--reference`), one process takes
the same steps on whole batches (FSDP2 averages the ranks' gradients: the mean of the two halves' losses).
With `--step-sparsity DIR` the project's `StepSparsity` records each step on the sharded parameters (local
shards, counts summed over the ranks), and rank 0 writes its records and the full weights of every step
(gathered from the shards) there, for the test's own count.
"""

import argparse
import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from subnet_rl.masks import MaskFile
from subnet_rl.models import TinyModelSpec, build_char_tokenizer, build_tiny_model
from subnet_rl.step_sparsity import StepSparsity
from subnet_rl.subnetwork import SubnetworkMask
from subnet_rl.tasks import addition

SPEC = TinyModelSpec(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4, num_kv_heads=2)
STEPS, HALF, SEQ = 4, 4, 12


def batches(vocab: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    return [torch.randint(4, vocab, (2 * HALF, SEQ), generator=g) for _ in range(STEPS)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mask", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--reference", action="store_true")
    parser.add_argument("--replicated", action="store_true",
                        help="DDP's case: a process group, no sharding, every rank the same steps on whole batches")
    parser.add_argument("--no-mask", action="store_true", help="control: the same run without the subnetwork")
    parser.add_argument("--step-sparsity", help="folder for the step-sparsity records and per-step weights")
    args = parser.parse_args()
    torch.manual_seed(0)
    tokenizer = build_char_tokenizer(addition.ALPHABET)
    model = build_tiny_model(SPEC, tokenizer, seed=0)
    subnet = None if args.no_mask else SubnetworkMask(model, MaskFile(args.mask))  # built unsharded, as in training
    rank, world = 0, 1
    if not args.reference:
        import torch.distributed as dist
        from torch.distributed.fsdp import fully_shard

        dist.init_process_group("gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    if not args.reference and not args.replicated:
        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model)
        assert all(type(p).__name__ == "DTensor" for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=args.weight_decay)
    if subnet is not None:
        subnet.bind(model, optimizer)
        print(f"rank {rank}: mask state {subnet.state_bytes()} bytes for "
              f"{sum(p.numel() for p in model.parameters())} parameters", flush=True)
    recorder, folder = None, Path(args.step_sparsity) if args.step_sparsity else None
    if folder is not None:
        recorder = StepSparsity([name for name, _ in model.named_parameters()])
        recorder.bind(model)
        print(f"rank {rank}: step_sparsity copy {recorder.state_bytes()} bytes", flush=True)
        save_full(model, folder / "step-0.safetensors", rank)
    for step, batch in enumerate(batches(len(tokenizer)), start=1):
        if args.reference or args.replicated:
            halves = batch.split(HALF)
            loss = sum(model(input_ids=h, labels=h).loss for h in halves) / len(halves)
        else:
            mine = batch.split(HALF)[rank]
            loss = model(input_ids=mine, labels=mine).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
        if subnet is not None:
            subnet.restore_frozen()
        optimizer.zero_grad(set_to_none=True)
        if recorder is not None:
            recorder.record(step)
            save_full(model, folder / f"step-{step}.safetensors", rank)
    if recorder is not None and rank == 0:
        (folder / "records.json").write_text(json.dumps(recorder.records))
    save_full(model, Path(args.out), rank)
    if not args.reference:
        torch.distributed.destroy_process_group()
    print(f"rank {rank}/{world}: done", flush=True)


def save_full(model: torch.nn.Module, path: Path, rank: int) -> None:
    """The full weights (every rank takes part in gathering the shards); rank 0 writes them."""
    state = {name: (t.full_tensor() if type(t).__name__ == "DTensor" else t).detach().clone().contiguous()
             for name, t in model.state_dict().items()}
    if rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(state, str(path))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
