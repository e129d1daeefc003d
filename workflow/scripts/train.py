from subnet_rl.config import RunSpec
from subnet_rl.jobs import snakemake_job
from subnet_rl.launch import job_folders, launch_of, train_job

with snakemake_job(snakemake):
    spec = RunSpec.from_dict(snakemake.params.spec)
    pairs = snakemake.input.get("pairs")  # what the run trains on: its pairs (preference algorithms) or train split
    train_job(spec, snakemake.input.start, snakemake.input.train, snakemake.output[0],
              pairs=pairs, mask=snakemake.input.get("mask"),
              launch=launch_of(spec, snakemake.input.start, snakemake.params.launch, mask="mask" in snakemake.input.keys(),
                               data=pairs or snakemake.input.train),
              **job_folders(snakemake.output[0]))
