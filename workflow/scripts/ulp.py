import pandas as pd

from subnet_rl.atomic import write_parquet
from subnet_rl.jobs import snakemake_job
from subnet_rl.ulp import checkpoint_ulps

with snakemake_job(snakemake):
    rows = checkpoint_ulps(snakemake.input.before, snakemake.input.after)
    below, entries = sum(r["below_half_ulp"] for r in rows), sum(r["numel"] - r["non_finite"] for r in rows)
    print(f"{len(rows)} tensors, {entries} finite entries, {below} below half a bf16 ulp of their start")
    write_parquet(pd.DataFrame(rows), snakemake.output[0])
