"""Compare the outputs of two runs of the workflow, file by file: did a change leave every number as it was?

    python bench/compare_results.py BEFORE/results AFTER/results [--all]

Compared: every table (`tables/*.csv|md|tex`), the findings, and the stage outputs behind them (diff,
evaluation, dynamics, overlap, rank and pairs Parquet; masks and checkpoint weights as bytes). Parquet
files are compared as data (pandas `equals`, so a file rewritten by another pyarrow with the same values
counts as equal) and also as bytes; everything else as bytes. Logs, benchmarks, figures (pixels depend on
the matplotlib build) and the report are not compared. Exit status 1 when any compared file differs or
exists on one side only, so the script can gate a refactor.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
from pathlib import Path

import pandas as pd

#: what counts as a number of the study: tables, findings and the stage outputs they are computed from
PATTERNS = ("tables/*.csv", "tables/*.md", "tables/*.tex", "findings.csv", "findings.md",
            "diff/**/*.parquet", "eval/**/*.parquet", "dynamics/**/*.parquet", "overlap/**/*.parquet",
            "rank/**/*.parquet", "pairs*/**/*.parquet", "masks/**/*.safetensors",
            "checkpoints/**/model.safetensors")


def files(root: Path) -> set[str]:
    found: set[str] = set()
    for pattern in PATTERNS:
        found |= {str(p.relative_to(root)) for p in root.glob(pattern) if p.is_file()}
    return found


def same(a: Path, b: Path) -> str:
    """'identical' (bytes), 'equal data' (Parquet values equal, bytes not) or 'DIFFERENT'."""
    if filecmp.cmp(a, b, shallow=False):
        return "identical"
    if a.suffix == ".parquet" and pd.read_parquet(a).equals(pd.read_parquet(b)):
        return "equal data"
    return "DIFFERENT"


def compare(before: Path, after: Path) -> list[tuple[str, str]]:
    names_a, names_b = files(before), files(after)
    rows = [(name, same(before / name, after / name)) for name in sorted(names_a & names_b)]
    rows += [(name, "only before") for name in sorted(names_a - names_b)]
    rows += [(name, "only after") for name in sorted(names_b - names_a)]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--all", action="store_true", help="list identical files too")
    args = parser.parse_args(argv)
    rows = compare(args.before, args.after)
    counts: dict[str, int] = {}
    for name, verdict in rows:
        counts[verdict] = counts.get(verdict, 0) + 1
        if args.all or verdict not in ("identical", "equal data"):
            print(f"{verdict:12} {name}")
    print("; ".join(f"{n} {v}" for v, n in sorted(counts.items())) + f" ({len(rows)} files)")
    return 0 if set(counts) <= {"identical", "equal data"} else 1


if __name__ == "__main__":
    sys.exit(main())
