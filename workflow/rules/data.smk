rule dataset:
    output:
        train="results/data/{dataset}/train.parquet",
        test="results/data/{dataset}/test.parquet",
    params:
        code=code("dataset.py"),
        spec=lambda wildcards: config["datasets"][wildcards.dataset],
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/data/{dataset}.log",
    benchmark:
        "results/benchmarks/data/{dataset}.tsv"
    script:
        "../scripts/dataset.py"
