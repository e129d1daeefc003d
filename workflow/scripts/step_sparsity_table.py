from pathlib import Path

from subnet_rl.jobs import snakemake_job
from subnet_rl.stage_outputs import read_diff
from subnet_rl.step_sparsity_table import compared_entries, read_records, step_sparsity_tables
from subnet_rl.tables import TITLES, write_table

with snakemake_job(snakemake):
    inp, out, runs = snakemake.input, snakemake.output, snakemake.params.runs
    compared = {Path(p).name.removesuffix(".parquet"): compared_entries(read_diff(p)) for p in inp.diffs}
    records = {}
    for folder in inp.checkpoints:
        run = Path(folder).name
        records[run] = read_records(folder, runs[run]["steps"], compared[run])
    for name, table in step_sparsity_tables(records, runs).items():
        write_table(table, out[f"{name}_md"], out[f"{name}_csv"], TITLES[name], out[f"{name}_tex"])
