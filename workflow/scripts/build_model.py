from subnet_rl.jobs import snakemake_job
from subnet_rl.models import TinyModelSpec, build_char_tokenizer, build_tiny_model, save_checkpoint
from subnet_rl.tasks.addition import ALPHABET

with snakemake_job(snakemake):
    tokenizer = build_char_tokenizer(ALPHABET)
    model = build_tiny_model(TinyModelSpec(**snakemake.params.spec), tokenizer, snakemake.params.seed)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters")
    save_checkpoint(model, tokenizer, snakemake.output[0])
