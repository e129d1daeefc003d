from subnet_rl.config import warmup_run
from subnet_rl.jobs import snakemake_job
from subnet_rl.launch import job_folders, launch_of, train_job

with snakemake_job(snakemake):
    spec = warmup_run(snakemake.params.spec)
    train_job(spec, snakemake.input.init, snakemake.input.train, snakemake.output[0],
              launch=launch_of(spec, snakemake.input.init, snakemake.params.launch, data=snakemake.input.train),
              **job_folders(snakemake.output[0]))
