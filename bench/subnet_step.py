"""Masked (subnetwork) vs full train-step time on a >= 50M-parameter causal LM.

One step = forward, backward, gradient clipping, AdamW step, as the Trainer does it; the masked step adds
what `SubnetworkMask` adds (the gradient hooks and the restore of frozen entries after the step). Full and
masked steps alternate so drift (thermal, page cache, other load) hits both alike; medians are reported.

    .venv/bin/python bench/subnet_step.py [--steps 10] [--trainable 0.2] [--device cuda]

Prints one JSON object: full_s, masked_s, ratio, params, device, ...
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from subnet_rl.masks import MaskFile, save_masks
from subnet_rl.subnetwork import SubnetworkMask


def build(seed: int, device: torch.device) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=32000, hidden_size=512, intermediate_size=2048, num_hidden_layers=8,
                         num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=256,
                         tie_word_embeddings=False)
    return LlamaForCausalLM(config).to(device)


def step(model, optimizer, batch, subnet: SubnetworkMask | None) -> float:
    sync = torch.cuda.synchronize if batch.is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    loss = model(input_ids=batch, labels=batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    if subnet is not None:
        subnet.restore_frozen()
    optimizer.zero_grad(set_to_none=True)
    sync()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=10, help="timed steps of each kind (after 2 warm-up steps)")
    parser.add_argument("--trainable", type=float, default=0.2, help="share of entries in the subnetwork")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--weight-decay", type=float, default=0.1,
                        help="AdamW's; 0 keeps no start copies (masks alone: 1 byte per parameter)")
    args = parser.parse_args()
    device = torch.device(args.device)

    full, masked = build(0, "cpu"), build(0, "cpu")
    generator = torch.Generator().manual_seed(1)
    masks = {n: torch.rand(p.shape, generator=generator) < args.trainable for n, p in masked.named_parameters()}
    with tempfile.TemporaryDirectory() as tmp:
        save_masks(masks, Path(tmp) / "mask.safetensors", "bench")
        subnet = SubnetworkMask(masked, MaskFile(Path(tmp) / "mask.safetensors"))  # built on the CPU, as in training
    full.to(device)
    masked.to(device)
    optimizers = [torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=args.weight_decay) for m in (full, masked)]
    subnet.bind(masked, optimizers[1])  # what the Trainer's on_train_begin does
    batch = torch.randint(0, 32000, (args.batch, args.seq), generator=generator).to(device)
    times: dict[str, list[float]] = {"full": [], "masked": []}
    for i in range(args.steps + 2):
        t_full = step(full, optimizers[0], batch, None)
        t_masked = step(masked, optimizers[1], batch, subnet)
        if i >= 2:
            times["full"].append(t_full)
            times["masked"].append(t_masked)
    full_s, masked_s = statistics.median(times["full"]), statistics.median(times["masked"])
    print(json.dumps({
        "full_s": round(full_s, 4), "masked_s": round(masked_s, 4), "ratio": round(masked_s / full_s, 3),
        "params": sum(p.numel() for p in full.parameters()), "trainable": args.trainable,
        "weight_decay": args.weight_decay,
        "mask_bytes_per_param": round(subnet.state_bytes() / sum(p.numel() for p in masked.parameters()), 3),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(), "batch": [args.batch, args.seq], "steps": args.steps,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
