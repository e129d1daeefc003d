import pandas as pd

from subnet_rl.atomic import write_parquet
from subnet_rl.diff import Criterion
from subnet_rl.dynamics import snapshots_of, training_dynamics
from subnet_rl.jobs import snakemake_job

with snakemake_job(snakemake):
    run, p = snakemake.input.run, snakemake.params
    points = [*snapshots_of(run), (p.steps, run)]
    # The diff and mask stages' start -> final comparison is reused, not redone (see subnet_rl.dynamics).
    steps, split = training_dynamics(snakemake.input.start, points, Criterion.parse(p.criterion),
                                     final_diff=snakemake.input.diff, final_mask=snakemake.input.mask,
                                     workers=snakemake.threads)
    print(f"{len(points)} checkpoints; never {split['never']:.2f}%, back {split['back']:.2f}%, final {split['final']:.2f}%")
    write_parquet(steps, snakemake.output.steps)
    write_parquet(pd.DataFrame([split]), snakemake.output.split)
