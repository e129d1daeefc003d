from pathlib import Path

import pandas as pd

from subnet_rl.jobs import snakemake_job
from subnet_rl.tables import TITLES, layers_table, rank_table, write_table

with snakemake_job(snakemake):
    inp, out = snakemake.input, snakemake.output
    read = lambda paths: {Path(p).name.removesuffix(".parquet"): pd.read_parquet(p) for p in paths}  # noqa: E731
    write_table(rank_table(read(inp.ranks), snakemake.params.runs), out.rank_md, out.rank_csv, TITLES["rank"],
                out.rank_tex)
    layers = layers_table(read(inp.diffs), snakemake.params.criterion)
    write_table(layers, out.layers_md, out.layers_csv, TITLES["layers"], out.layers_tex)
