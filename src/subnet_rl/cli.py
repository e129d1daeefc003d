"""`subnet-rl`: the diff engine for people who only want update sparsity or masks of two checkpoints.

Start-up stays cheap (NumPy only; pandas only to write a table), so it scales from a laptop to 70B pairs.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("before", help="checkpoint folder (sharded or not) or .safetensors file")
    parser.add_argument("after", help="checkpoint folder (sharded or not) or .safetensors file")
    parser.add_argument("--chunk-mb", type=float, default=16, help="bytes per tensor chunk in memory (default 16)")
    parser.add_argument("--threads", type=int, default=None, help="worker threads (default: cores, at most 4)")
    from .diff import RESIZED_POLICIES  # the criteria vocabulary only: no NumPy before a command runs

    parser.add_argument("--resized", choices=RESIZED_POLICIES, default="skip",
                        help="tensors whose first dimension differs: skip them as the official script does "
                             "(default), or compare their shared leading rows")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="subnet-rl", description=__doc__)
    parser.add_argument("--version", action="version", version=f"subnet-rl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    diff = sub.add_parser("diff", help="update sparsity between two checkpoints")
    _common(diff)
    diff.add_argument("--tolerance", "-t", type=float, action="append", metavar="T",
                      help="tol=T: the official computation, bf16 subtraction and torch.isclose(Δ, 0, atol=T) "
                           "(repeatable; default 1e-8 1e-7 1e-6 1e-5)")
    diff.add_argument("--exact-tolerance", type=float, action="append", metavar="T",
                      help="exact_tol=T: the exact difference of the bf16 values against T (repeatable)")
    diff.add_argument("--relative", type=float, action="append", metavar="ETA",
                      help="rel=ETA: unchanged when |Δ| <= ETA max(|w0|, |w1|) on bf16 values (repeatable)")
    diff.add_argument("--out", metavar="F.parquet", help="write the per-tensor table here")
    diff.add_argument("--json", action="store_true", help="print a JSON summary instead of text")
    mask = sub.add_parser("mask", help="bit-packed mask of updated entries (a file, or a folder mirroring shards)")
    _common(mask)
    mask.add_argument("--out", required=True, metavar="PATH",
                      help="a .safetensors file, or a folder with one mask file per checkpoint shard")
    mask.add_argument("--criterion", default="tol=1e-05",
                      help="tol=T, exact_tol=T, rel=ETA, bf16_bitwise or exact (default tol=1e-05)")
    rank = sub.add_parser("rank", help="rank of each 2-D weight's update (torch; GPU when present)")
    rank.add_argument("before", help="checkpoint folder (sharded or not) or .safetensors file")
    rank.add_argument("after", help="checkpoint folder (sharded or not) or .safetensors file")
    rank.add_argument("--rtol", type=float, default=None,
                      help="singular values above rtol x the largest count (default: max(m, n) x float32 eps)")
    rank.add_argument("--json", action="store_true", help="print one JSON object per tensor")
    plan = sub.add_parser("plan", help="memory per GPU of every training job of a workflow config (no torch)")
    plan.add_argument("--configfile", required=True, action="append", metavar="F",
                      help="workflow config file (repeatable: merged in order, as Snakemake merges them)")
    plan.add_argument("--directory", default=".",
                      help="the workflow's working directory, where results/ holds fetched checkpoints (default .)")
    plan.add_argument("--json", action="store_true", help="print every job's terms in bytes as JSON")
    return parser


def _merged(base: dict, update: dict) -> dict:
    """Snakemake's merge of config files: mappings key by key, anything else replaced."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merged(base[key], value)
        else:
            base[key] = value
    return base


def load_workflow_config(files: list[str]) -> dict:
    """A config as the workflow reads it: duplicate keys refused, files merged, '1e-4' strings as floats,
    validated against the workflow's schema (its defaults filled in)."""
    from pathlib import Path

    import yaml

    from .config import coerce_scientific_notation
    from .config_files import check_config_files

    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"config file {missing[0]} does not exist")
    check_config_files(files)
    config: dict = {}
    for file in files:
        _merged(config, yaml.safe_load(Path(file).read_text()) or {})
    coerce_scientific_notation(config)
    schema = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
    if schema.is_file():
        from snakemake.utils import validate

        validate(config, schema=str(schema))
    return config


def _plan(args: argparse.Namespace) -> int:
    from .plan import describe_shapes, format_table, plan_config, refusal, train_settings

    config = load_workflow_config(args.configfile)
    plans = plan_config(config, root=args.directory)
    if args.json:
        print(json.dumps([{"run": p.run, "variant": p.variant, "gpus": p.gpus, "nodes": p.nodes,
                           "sharding": p.chosen, "terms": None if p.terms is None else p.terms.as_dict(),
                           "total": p.total, "gpu_mem_gb": p.gpu_mem_gb, "fits": p.fits,
                           "assumed_lengths": p.assumed} for p in plans], indent=2))
    else:
        settings = train_settings(config)
        where = (f"{settings['gpus']} GPU(s) per node x {settings['nodes']} node(s)" if settings["gpus"]
                 else "the CPU (resources.train.gpu: 0)")
        memory = (f"resources.train.gpu_mem_gb: {settings['gpu_mem_gb']:g}" if settings["gpu_mem_gb"] is not None
                  else "no resources.train.gpu_mem_gb: nothing is refused")
        print(f"memory plan per device, GB = 2^30 bytes; {where}; {memory}")
        for line in describe_shapes(plans):
            print(f"  {line}")
        print(format_table(plans))
    too_big = [p for p in plans if p.fits is False]
    for plan in too_big:
        print(f"subnet-rl plan: {refusal(plan)}", file=sys.stderr)
    return 1 if too_big else 0


def _rank(args: argparse.Namespace) -> int:
    from .rank import checkpoint_ranks, rank_summary

    rows = checkpoint_ranks(args.before, args.after, args.rtol)
    if args.json:  # NaN (a zero update's stable/effective rank) as null: strict JSON
        print(json.dumps([{k: None if isinstance(v, float) and v != v else v for k, v in r.items()} for r in rows],
                         indent=2))
        return 0
    for group, stats in rank_summary(rows).items():
        print(f"{group}: {stats['matrices']} matrices, mean rank {stats['mean_rank_pct']:.1f}% of the maximum, "
              f"stable rank {stats['mean_stable_rank']:.2f}, effective rank {stats['mean_effective_rank']:.2f}")
    return 0


def _diff(args: argparse.Namespace) -> int:
    from .diff import DEFAULT_TOLERANCES, default_criteria, diff_rows, skipped, sparsity

    criteria = default_criteria(args.tolerance or DEFAULT_TOLERANCES, args.exact_tolerance or (), args.relative or ())
    rows = diff_rows(args.before, args.after, criteria, int(args.chunk_mb * 2**20), args.threads, args.resized)
    if args.out:
        import pandas as pd

        from .atomic import write_parquet

        write_parquet(pd.DataFrame(rows), args.out)
    summary = {
        "before": args.before,
        "after": args.after,
        "tensors": len(rows),
        "numel": sum(r["numel"] for r in rows if r["role"] == "param"),
        "sparsity": sparsity(rows),
        "skipped": skipped(rows),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{summary['tensors']} tensors, {summary['numel']:,} parameter entries compared")
        for label, value in summary["sparsity"].items():
            print(f"  sparsity [{label}]: {100 * value:.2f}%")
        for s in summary["skipped"]:
            print(f"  not fully compared: {s['name']} ({s['status']}, {s['numel_skipped']:,} entries skipped)")
    return 0


def _mask(args: argparse.Namespace) -> int:
    from .diff import Criterion
    from .mask_extraction import extract_masks

    stats = extract_masks(args.before, args.after, Criterion.parse(args.criterion), args.out,
                          int(args.chunk_mb * 2**20), args.threads, args.resized)
    print(json.dumps({"out": args.out, "criterion": args.criterion, **stats}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .checkpoints import CheckpointError

    try:
        return {"diff": _diff, "mask": _mask, "rank": _rank, "plan": _plan}[args.command](args)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        print(f"subnet-rl: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
