rule diff:
    input:
        unpack(diff_inputs),
    output:
        "results/diff/{variant}/{name}.parquet",
    params:
        code=code("diff.py"),
        settings=diff_settings,
    threads: resource("diff", "threads", 1)
    resources:
        mem_mb=resource("diff", "mem_mb", 2000),
        runtime=resource("diff", "runtime", 20),
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/diff/{variant}/{name}.log",
    benchmark:
        "results/benchmarks/diff/{variant}/{name}.tsv"
    script:
        "../scripts/diff.py"
