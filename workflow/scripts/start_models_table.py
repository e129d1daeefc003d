from subnet_rl.jobs import snakemake_job
from subnet_rl.start_models import TITLE, start_models_table
from subnet_rl.tables import write_table

with snakemake_job(snakemake):
    out = snakemake.output
    table = start_models_table(snakemake.input.evals, snakemake.params.checkpoints,
                               snakemake.params.max_clipped_share)
    write_table(table, out.start_models_md, out.start_models_csv, TITLE, out.start_models_tex)
    print(table.to_string(index=False))
