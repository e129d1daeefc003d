from subnet_rl.jobs import snakemake_job
from subnet_rl.hub_checkpoints import fetch_pretrained

with snakemake_job(snakemake):
    p = snakemake.params
    print(fetch_pretrained(p.source, p.name, snakemake.output[0], p.revision, p.cache_dir, p.config_key))
