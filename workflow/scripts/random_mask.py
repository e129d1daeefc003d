from subnet_rl.jobs import snakemake_job
from subnet_rl.masks import MaskFile, random_mask_like

with snakemake_job(snakemake):
    p = snakemake.params
    print(random_mask_like(MaskFile(snakemake.input[0]), p.density, p.seed, snakemake.output[0]))
