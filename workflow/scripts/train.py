from pathlib import Path

from subnet_rl.config import RunSpec
from subnet_rl.jobs import snakemake_job
from subnet_rl.launch import launch_of, train_job

with snakemake_job(snakemake):
    spec = RunSpec(**snakemake.params.spec)
    # results/checkpoints/<variant>/<name> -> its resume folder and tracker logs beside it
    where = Path(snakemake.output[0]).relative_to("results/checkpoints")
    train_job(spec, snakemake.input.start, snakemake.input.train, snakemake.output[0],
              pairs=snakemake.input.get("pairs"), mask=snakemake.input.get("mask"),
              launch=launch_of(spec, snakemake.input.start, snakemake.params.launch, mask="mask" in snakemake.input.keys()),
              resume_dir=Path("results/resume") / where, tracking_dir=Path("results/tracking") / where)
