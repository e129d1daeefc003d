"""Summarise Snakemake `benchmark:` files of a run: wall seconds and peak RSS per stage (rule).

    python bench/stage_times.py [results/benchmarks]
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def stage_table(root: Path) -> pd.DataFrame:
    rows = []
    for tsv in sorted(root.rglob("*.tsv")):
        record = pd.read_csv(tsv, sep="\t").iloc[-1]
        stage = "/".join(tsv.relative_to(root).parts[:-1]) or tsv.stem
        rows.append({"stage": stage, "s": float(record["s"]), "max_rss_mb": float(record["max_rss"])})
    df = pd.DataFrame(rows)
    return (df.groupby("stage")
              .agg(jobs=("s", "size"), total_s=("s", "sum"), max_job_s=("s", "max"), max_rss_mb=("max_rss_mb", "max"))
              .sort_values("total_s", ascending=False))


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "results/benchmarks")
    table = stage_table(root)
    print(table.to_markdown(floatfmt=".1f"))
    print(f"\nsum of job wall times: {table['total_s'].sum():.0f} s over {int(table['jobs'].sum())} jobs")
