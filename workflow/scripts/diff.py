from subnet_rl.atomic import write_parquet
from subnet_rl.diff import default_criteria, diff_checkpoints, sparsity
from subnet_rl.jobs import snakemake_job

with snakemake_job(snakemake):
    table = diff_checkpoints(snakemake.input.before, snakemake.input.after,
                             default_criteria(snakemake.params.tolerances), workers=snakemake.threads)
    print(sparsity(table))
    write_parquet(table, snakemake.output[0])
