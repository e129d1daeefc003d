from subnet_rl.config import WarmupSpec
from subnet_rl.jobs import snakemake_job
from subnet_rl.launch import launch_of, train_job

with snakemake_job(snakemake):
    spec = WarmupSpec(**snakemake.params.spec).as_run()
    train_job(spec, snakemake.input.init, snakemake.input.train, snakemake.output[0],
              launch=launch_of(spec, snakemake.input.init, snakemake.params.launch))
