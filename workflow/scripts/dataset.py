from subnet_rl.data import build_dataset, write_dataset
from subnet_rl.jobs import snakemake_job

with snakemake_job(snakemake):
    splits = build_dataset(dict(snakemake.params.spec), snakemake.wildcards.dataset)
    write_dataset(splits, {"train": snakemake.output.train, "test": snakemake.output.test})
    print({split: len(df) for split, df in splits.items()})
