import json

from subnet_rl.atomic import write_text
from subnet_rl.jobs import snakemake_job
from subnet_rl.hub_checkpoints import download_snapshot

with snakemake_job(snakemake):
    ref = snakemake.params.ref
    record = download_snapshot(ref["name"], ref.get("revision"), snakemake.params.cache_dir,
                               list(snakemake.params.allow_patterns), config_key=snakemake.params.config_key)
    print(record)
    write_text(json.dumps(record, indent=2), snakemake.output[0])
