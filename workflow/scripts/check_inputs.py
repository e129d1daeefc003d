import json

from subnet_rl.atomic import write_text
from subnet_rl.jobs import snakemake_job
from subnet_rl.stage_checks import check_stage_inputs

with snakemake_job(snakemake):
    summary = check_stage_inputs(snakemake.input.files, snakemake.params.diffs)
    print(f"{len(summary)} inputs of rule {snakemake.wildcards.stage} checked")
    write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n", snakemake.output[0])
