# Hub checkpoints of the checkpoint pairs: downloaded once each into the hub cache, recorded with the
# commit they resolved to (the record, not a copy of the weights, is the rule's output).


rule download_checkpoint:
    output:
        "results/downloads/{download}.json",
    params:
        code=code("download_checkpoint.py"),
        ref=lambda wildcards: DOWNLOADS[wildcards.download],
        config_key=lambda wildcards: DOWNLOAD_KEYS[wildcards.download],
        cache_dir=config["downloads"].get("cache_dir"),
        allow_patterns=config["downloads"]["allow_patterns"],
    resources:
        mem_mb=resource("download", "mem_mb", 2000),
        runtime=resource("download", "runtime", 240),
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/download/{download}.log",
    benchmark:
        "results/benchmarks/download/{download}.tsv"
    script:
        "../scripts/download_checkpoint.py"
