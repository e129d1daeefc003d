rule evaluate:
    input:
        checkpoint="results/checkpoints/{variant}/{name}",
        test=evaluation_test_file,
    output:
        "results/eval/{variant}/{name}.parquet",
    params:
        settings=config["evaluate"],
    threads: resource("evaluate", "threads", 1)
    resources:
        gpu=resource("evaluate", "gpu", 0),
        mem_mb=resource("evaluate", "mem_mb", 2000),
        runtime=resource("evaluate", "runtime", 20),
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/eval/{variant}/{name}.log",
    benchmark:
        "results/benchmarks/eval/{variant}/{name}.tsv"
    script:
        "../scripts/evaluate.py"
