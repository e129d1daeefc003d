"""Diff engine vs the whole-model approach of the paper's official script, on a ~1.3 GB checkpoint pair.

    .venv/bin/python bench/diff_bench.py [--runs 3] [--out bench/out]

Builds (once) a synthetic pair of sharded bf16 Llama-shaped checkpoints of ~660M parameters, about
20% of the entries changed. Then, each in a fresh process timed by /usr/bin/time -v (wall time and
peak RSS), with a warm page cache, medians of --runs runs:
  - whole-model: AutoModelForCausalLM.from_pretrained both, subtract state dicts, concatenate, count;
  - `subnet-rl diff BEFORE AFTER --json`;
  - `subnet-rl --version` (start-up cost).
Prints the peak-RSS ratio (target >= 20), the wall-time ratio (target >= 4) and the net throughput
(bytes of both checkpoints / (diff wall - version wall), target >= 1.5 GB/s).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import torch

BIN = Path(sys.executable).parent
SHAPE = dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=10,
             num_attention_heads=16, num_key_value_heads=16)
SHARD_BYTES = 300 * 2**20

WHOLE_MODEL = """
import sys, torch
from transformers import AutoModelForCausalLM
a = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.bfloat16).state_dict()
b = AutoModelForCausalLM.from_pretrained(sys.argv[2], dtype=torch.bfloat16).state_dict()
delta = torch.cat([(b[k].float() - a[k].float()).flatten() for k in a if a[k].shape == b[k].shape])
print('sparsity', float((delta.abs() <= 1e-5).sum()) / delta.numel())
"""


def llama_tensors(cfg: dict) -> dict[str, tuple[int, ...]]:
    h, i, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    shapes = {"model.embed_tokens.weight": (v, h)}
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        shapes.update({p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,)})
        for m in ("q_proj", "k_proj", "v_proj", "o_proj"):
            shapes[f"{p}self_attn.{m}.weight"] = (h, h)
        shapes[p + "mlp.gate_proj.weight"] = (i, h)
        shapes[p + "mlp.up_proj.weight"] = (i, h)
        shapes[p + "mlp.down_proj.weight"] = (h, i)
    shapes["model.norm.weight"] = (h,)
    shapes["lm_head.weight"] = (v, h)
    return shapes


def build_pair(out: Path) -> tuple[Path, Path]:
    """Write before/ and after/ (sharded safetensors + index + config.json), unless already there."""
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    before, after = out / "before", out / "after"
    if (after / "model.safetensors.index.json").is_file():
        return before, after
    g = torch.Generator().manual_seed(0)
    shapes = llama_tensors(SHAPE)
    for folder in (before, after):
        folder.mkdir(parents=True, exist_ok=True)
        LlamaConfig(**SHAPE, tie_word_embeddings=False).save_pretrained(folder)
    shard: dict[str, dict[str, torch.Tensor]] = {"before": {}, "after": {}}
    weight_map: dict[str, str] = {}
    size = index = 0

    def flush():
        nonlocal size, index
        index += 1
        for side, folder in (("before", before), ("after", after)):
            save_file(shard[side], folder / f"model-{index:05d}.safetensors", metadata={"format": "pt"})
            shard[side] = {}
        size = 0

    for name, shape in shapes.items():
        w = (torch.randn(shape, generator=g) * 0.02).to(torch.bfloat16)
        changed = torch.rand(shape, generator=g) < 0.2
        w2 = torch.where(changed, (w.float() + torch.randn(shape, generator=g) * 1e-3).to(torch.bfloat16), w)
        shard["before"][name], shard["after"][name] = w, w2
        weight_map[name] = f"model-{index + 1:05d}.safetensors"
        size += w.numel() * 2
        if size >= SHARD_BYTES:
            flush()
    if shard["before"]:
        flush()
    total = sum(int(torch.tensor(s).prod()) * 2 for s in shapes.values())
    for folder in (before, after):
        (folder / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return before, after


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of one command, from /usr/bin/time -v."""
    result = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, check=True)
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", result.stderr)
    hours, minutes, seconds = wall.groups()
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds), int(rss.group(1)) / 1024, result.stdout


def median_of(cmd: list[str], runs: int) -> tuple[float, float, str]:
    samples = [timed(cmd) for _ in range(runs)]
    return (statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples), samples[-1][2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument("--skip-whole-model", action="store_true", help="only time subnet-rl")
    args = parser.parse_args()
    before, after = build_pair(args.out)
    nbytes = sum(f.stat().st_size for d in (before, after) for f in d.glob("*.safetensors"))
    for f in [*before.glob("*.safetensors"), *after.glob("*.safetensors")]:
        f.read_bytes()  # warm the page cache
    version_wall, version_rss, _ = median_of([str(BIN / "subnet-rl"), "--version"], args.runs)
    diff_wall, diff_rss, out = median_of([str(BIN / "subnet-rl"), "diff", str(before), str(after), "--json"], args.runs)
    ours = json.loads(out)["sparsity"]["tol=1e-05"]
    print(f"pair: {nbytes / 1e9:.2f} GB in both checkpoints, {args.runs} runs each, medians")
    print(f"subnet-rl --version: {version_wall:.2f} s, peak RSS {version_rss:.0f} MB")
    print(f"subnet-rl diff:      {diff_wall:.2f} s, peak RSS {diff_rss:.0f} MB, sparsity@1e-5 {ours:.4f}")
    throughput = nbytes / (diff_wall - version_wall) / 1e9
    print(f"net throughput: {throughput:.2f} GB/s (target >= 1.5)")
    if not args.skip_whole_model:
        whole_wall, whole_rss, whole_out = median_of([sys.executable, "-c", WHOLE_MODEL, str(before), str(after)],
                                                     args.runs)
        print(f"whole-model:         {whole_wall:.2f} s, peak RSS {whole_rss:.0f} MB, {whole_out.strip()}")
        print(f"peak RSS ratio whole/ours: {whole_rss / diff_rss:.1f} (target >= 20)")
        print(f"wall time ratio whole/ours: {whole_wall / diff_wall:.1f} (target >= 4)")


if __name__ == "__main__":
    main()
