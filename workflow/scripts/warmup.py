from subnet_rl.config import WarmupSpec
from subnet_rl.jobs import snakemake_job
from subnet_rl.training import train

with snakemake_job(snakemake):
    spec = WarmupSpec(**snakemake.params.spec).as_run()
    train(spec, snakemake.input.init, snakemake.input.train, snakemake.output[0])
