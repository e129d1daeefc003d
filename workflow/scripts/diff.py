from subnet_rl.atomic import write_parquet
from subnet_rl.diff import default_criteria, diff_checkpoints, sparsity
from subnet_rl.jobs import snakemake_job

with snakemake_job(snakemake):
    s = snakemake.params.settings
    table = diff_checkpoints(snakemake.input.before, snakemake.input.after,
                             default_criteria(s["tolerances"], s["exact_tolerances"], s["relative"]), workers=snakemake.threads,
                             resized=s["resized"], progress=True)
    print(sparsity(table))
    write_parquet(table, snakemake.output[0])
