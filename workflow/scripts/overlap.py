from subnet_rl.atomic import write_parquet
from subnet_rl.jobs import snakemake_job
from subnet_rl.overlap import pairwise_overlap

with snakemake_job(snakemake):
    pairs = pairwise_overlap(dict(zip(snakemake.params.runs, snakemake.input.masks, strict=True)))
    write_parquet(pairs, snakemake.output[0])
