from subnet_rl.atomic import write_parquet
from subnet_rl.jobs import snakemake_job
from subnet_rl.models import load_checkpoint
from subnet_rl.preferences import off_policy_pairs, with_likelihoods
from subnet_rl.stage_outputs import read_parquet
from subnet_rl.tasks import get_task

with snakemake_job(snakemake):
    model, tokenizer = load_checkpoint(snakemake.input.start)
    references = list(read_parquet(snakemake.input.train, ["answer"])["answer"])
    pairs = off_policy_pairs(read_parquet(snakemake.input.on_policy), references,
                             get_task(snakemake.params.task["task"]))
    scored = with_likelihoods(model, tokenizer, pairs)
    print(f"{len(pairs)} off-policy pairs; mean log-likelihood chosen {scored['chosen_logp'].mean():.3f}, "
          f"rejected {scored['rejected_logp'].mean():.3f}")
    write_parquet(scored, snakemake.output[0])
