import pandas as pd

from subnet_rl.atomic import write_parquet
from subnet_rl.evaluate import greedy_eval
from subnet_rl.jobs import snakemake_job
from subnet_rl.models import load_checkpoint

with snakemake_job(snakemake):
    s = snakemake.params.settings
    model, tokenizer = load_checkpoint(snakemake.input.checkpoint)
    scored = greedy_eval(model, tokenizer, pd.read_parquet(snakemake.input.test), s["max_new_tokens"], s["batch_size"])
    print(f"greedy accuracy {scored['correct'].mean():.4f}")
    write_parquet(scored, snakemake.output[0])
