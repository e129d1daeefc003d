import pandas as pd

from subnet_rl.atomic import write_parquet
from subnet_rl.evaluate import greedy_eval
from subnet_rl.jobs import snakemake_job
from subnet_rl.models import load_checkpoint
from subnet_rl.tasks import get_task

with snakemake_job(snakemake):
    s, t = snakemake.params.settings, snakemake.params.task
    model, tokenizer = load_checkpoint(snakemake.input.checkpoint)
    scored = greedy_eval(model, tokenizer, pd.read_parquet(snakemake.input.test), get_task(t["task"]), t["reward"],
                         s["max_new_tokens"], s["batch_size"])
    print(f"greedy accuracy {scored['correct'].mean():.4f}")
    write_parquet(scored, snakemake.output[0])
