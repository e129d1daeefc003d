rule preference_pairs:
    input:
        start="results/checkpoints/base/{start}",
        train=lambda wildcards: dataset_file(wildcards.dataset, "train"),
    output:
        "results/pairs/{start}/{dataset}.parquet",
    params:
        code=code("preference_pairs.py"),
        sampling=config["preference_pairs"],
        task=lambda wildcards: task_of(wildcards.dataset),
    threads: resource("evaluate", "threads", 1)
    resources:
        gpu=resource("evaluate", "gpu", 0),
        mem_mb=resource("evaluate", "mem_mb", 2000),
        runtime=resource("evaluate", "runtime", 20),
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/pairs/{start}/{dataset}.log",
    benchmark:
        "results/benchmarks/pairs/{start}/{dataset}.tsv"
    script:
        "../scripts/preference_pairs.py"


rule off_policy_pairs:
    input:
        start="results/checkpoints/base/{start}",
        on_policy="results/pairs/{start}/{dataset}.parquet",
        train=lambda wildcards: dataset_file(wildcards.dataset, "train"),
    output:
        "results/pairs_off_policy/{start}/{dataset}.parquet",
    params:
        code=code("off_policy_pairs.py"),
        task=lambda wildcards: task_of(wildcards.dataset),
    threads: resource("evaluate", "threads", 1)
    resources:
        gpu=resource("evaluate", "gpu", 0),
        mem_mb=resource("evaluate", "mem_mb", 2000),
        runtime=resource("evaluate", "runtime", 20),
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/pairs_off_policy/{start}/{dataset}.log",
    benchmark:
        "results/benchmarks/pairs_off_policy/{start}/{dataset}.tsv"
    script:
        "../scripts/off_policy_pairs.py"
