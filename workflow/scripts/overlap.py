from pathlib import Path

from subnet_rl.atomic import write_parquet
from subnet_rl.jobs import snakemake_job
from subnet_rl.overlap import pairwise_overlap

with snakemake_job(snakemake):
    masks = {Path(p).name.removesuffix(".safetensors"): p for p in snakemake.input.masks}
    write_parquet(pairwise_overlap(masks, snakemake.params.groups), snakemake.output[0])
