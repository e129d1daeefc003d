from subnet_rl.atomic import write_parquet
from subnet_rl.jobs import snakemake_job
from subnet_rl.models import load_checkpoint
from subnet_rl.preferences import on_policy_pairs, with_likelihoods
from subnet_rl.stage_outputs import read_parquet
from subnet_rl.tasks import get_task

with snakemake_job(snakemake):
    s, t = snakemake.params.sampling, snakemake.params.task
    model, tokenizer = load_checkpoint(snakemake.input.start)
    train = read_parquet(snakemake.input.train)
    pairs = on_policy_pairs(model, tokenizer, train, get_task(t["task"]), t["reward"], s["samples_per_prompt"],
                            s["temperature"], s["max_new_tokens"], s["seed"])
    print(f"{len(pairs)} pairs from {len(train)} prompts")
    write_parquet(with_likelihoods(model, tokenizer, pairs), snakemake.output[0])
