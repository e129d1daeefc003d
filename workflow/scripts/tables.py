from subnet_rl.jobs import snakemake_job
from subnet_rl.tables import TITLES, study_tables, write_table

with snakemake_job(snakemake):
    inp, out = snakemake.input, snakemake.output
    tables = study_tables(snakemake.params.runs, snakemake.params.warmup, inp.evals, inp.run_checkpoints,
                          inp.warmup_checkpoint, inp.run_diffs, inp.warmup_diff, inp.subnet_diffs,
                          inp.subnet_checkpoints, inp.overlap, snakemake.params.random_controls,
                          max_clipped_share=snakemake.params.max_clipped_share)
    for name, table in tables.items():
        write_table(table, out[f"{name}_md"], out[f"{name}_csv"], TITLES[name], out[f"{name}_tex"])
