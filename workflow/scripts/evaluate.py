from subnet_rl.atomic import write_parquet
from subnet_rl.evaluate import evaluate_checkpoint
from subnet_rl.jobs import snakemake_job
from subnet_rl.stage_outputs import read_parquet
from subnet_rl.tasks import get_task

with snakemake_job(snakemake):
    s, t = snakemake.params.settings, snakemake.params.task
    scored = evaluate_checkpoint(snakemake.input.checkpoint, read_parquet(snakemake.input.test), get_task(t["task"]),
                                 t["reward"], s["max_new_tokens"], s["batch_size"], s.get("engine", "hf"))
    print(f"greedy accuracy {scored['correct'].mean():.4f}; clipped at max_new_tokens {s['max_new_tokens']}: "
          f"{scored['clipped'].mean():.4f}")
    write_parquet(scored, snakemake.output[0])
