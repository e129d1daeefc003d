"""`subnet-rl`: the diff engine for people who only want update sparsity of two checkpoints."""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="subnet-rl", description=__doc__)
    parser.add_argument("--version", action="version", version=f"subnet-rl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    diff = sub.add_parser("diff", help="update sparsity between two checkpoints (folders or .safetensors files)")
    diff.add_argument("before")
    diff.add_argument("after")
    diff.add_argument("--tolerance", "-t", type=float, action="append", metavar="T",
                      help="absolute tolerance on bf16 values (repeatable; default 1e-8 1e-7 1e-6 1e-5)")
    diff.add_argument("--out", metavar="F.parquet", help="write the per-tensor table here")
    diff.add_argument("--json", action="store_true", help="print a JSON summary instead of a table")
    return parser


def _diff(args: argparse.Namespace) -> int:
    from .atomic import write_parquet
    from .diff import DEFAULT_TOLERANCES, default_criteria, diff_checkpoints, sparsity

    table = diff_checkpoints(args.before, args.after, default_criteria(args.tolerance or DEFAULT_TOLERANCES))
    if args.out:
        write_parquet(table, args.out)
    summary = {
        "before": args.before,
        "after": args.after,
        "tensors": len(table),
        "numel": int(table["numel"].sum()),
        "sparsity": sparsity(table),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{summary['tensors']} tensors, {summary['numel']:,} entries")
        for label, value in summary["sparsity"].items():
            print(f"  sparsity [{label}]: {100 * value:.2f}%")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .checkpoints import CheckpointError

    try:
        return _diff(args)
    except (CheckpointError, FileNotFoundError) as err:
        print(f"subnet-rl: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
