from pathlib import Path

from subnet_rl.jobs import snakemake_job
from subnet_rl.stage_outputs import read_diff, read_parquet
from subnet_rl.tables import TITLES, layers_table, rank_table, write_table
from subnet_rl.ulp import BINS, COUNTS
from subnet_rl.ulp_table import ulp_tables

with snakemake_job(snakemake):
    inp, out = snakemake.input, snakemake.output
    stem = lambda path: Path(path).name.removesuffix(".parquet")  # noqa: E731
    ranks = {stem(p): read_parquet(p) for p in inp.ranks}
    write_table(rank_table(ranks, snakemake.params.runs), out.rank_md, out.rank_csv, TITLES["rank"], out.rank_tex)
    diffs = {stem(p): read_diff(p) for p in inp.diffs}
    layers = layers_table(diffs, snakemake.params.criterion)
    write_table(layers, out.layers_md, out.layers_csv, TITLES["layers"], out.layers_tex)
    ulps = {stem(p): read_parquet(p, [*COUNTS, *BINS]) for p in inp.ulps}
    for name, table in ulp_tables(ulps, diffs, snakemake.params.runs).items():
        write_table(table, out[f"{name}_md"], out[f"{name}_csv"], TITLES[name], out[f"{name}_tex"])
