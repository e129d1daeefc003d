from pathlib import Path

import pandas as pd

from subnet_rl.jobs import snakemake_job
from subnet_rl.tables import overlap_table, sparsity_table, subnetwork_table, training_record, trainable_fraction, write_table


def by_name(paths):
    return {Path(p).name.removesuffix(".parquet"): p for p in paths}


with snakemake_job(snakemake):
    inp, out, runs = snakemake.input, snakemake.output, snakemake.params.runs
    accuracy = {(*Path(p).parts[-3:-1], Path(p).name.removesuffix(".parquet")): pd.read_parquet(p)["correct"].mean()
                for p in inp.evals}
    logs = {Path(c).name: training_record(c)["log_history"] for c in inp.run_checkpoints}
    logs.update({"sft-from-init": training_record(c)["log_history"] for c in inp.warmup_checkpoint})
    run_diffs = {name: pd.read_parquet(p) for name, p in by_name(inp.run_diffs).items()}
    warmup_diff = pd.read_parquet(inp.warmup_diff[0]) if inp.warmup_diff else None
    subnet_diffs = {name: pd.read_parquet(p) for name, p in by_name(inp.subnet_diffs).items()}
    trainable = {Path(ckpt).name: trainable_fraction(ckpt) for ckpt in inp.subnet_checkpoints}

    write_table(sparsity_table(runs, run_diffs, accuracy, logs, snakemake.params.warmup, warmup_diff),
                out.sparsity_md, out.sparsity_csv, "Update sparsity (% of entries unchanged)")
    write_table(subnetwork_table(runs, accuracy, subnet_diffs, trainable),
                out.subnetwork_md, out.subnetwork_csv, "Subnetwork vs full finetuning")
    write_table(overlap_table(pd.read_parquet(inp.overlap)), out.overlap_md, out.overlap_csv,
                "Overlap of updated entries between runs (%)")
