rule evaluate:
    input:
        checkpoint="results/checkpoints/{scored}/{name}",
        test=lambda wildcards: dataset_file(wildcards.dataset, "test"),
    output:
        "results/eval/{dataset}/{scored}/{name}.parquet",
    params:
        code=code("evaluate.py"),
        # the table's warning threshold and the start-model datasets are no generation settings: changing
        # them reruns only the tables (and scores only the datasets added)
        settings={k: v for k, v in config["evaluate"].items() if k not in ("max_clipped_share", "datasets")},
        task=lambda wildcards: task_of(wildcards.dataset),
    threads: resource("evaluate", "threads", 1)
    resources:
        gpu=resource("evaluate", "gpu", 0),
        mem_mb=resource("evaluate", "mem_mb", 2000),
        runtime=resource("evaluate", "runtime", 20),
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/eval/{dataset}/{scored}/{name}.log",
    benchmark:
        "results/benchmarks/eval/{dataset}/{scored}/{name}.tsv"
    script:
        "../scripts/evaluate.py"
