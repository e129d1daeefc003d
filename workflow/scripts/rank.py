import pandas as pd

from subnet_rl.atomic import write_parquet
from subnet_rl.jobs import snakemake_job
from subnet_rl.rank import checkpoint_ranks

with snakemake_job(snakemake):
    rows = checkpoint_ranks(snakemake.input.before, snakemake.input.after, snakemake.params.rtol)
    print(f"{len(rows)} update matrices")
    write_parquet(pd.DataFrame(rows), snakemake.output[0])
