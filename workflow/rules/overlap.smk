rule overlap:
    input:
        masks=expand("results/masks/{run}.safetensors", run=RUNS),
    output:
        "results/overlap/pairs.parquet",
    params:
        code=code("overlap.py"),
        groups=overlap_groups(),
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/overlap/pairs.log",
    benchmark:
        "results/benchmarks/overlap/pairs.tsv"
    script:
        "../scripts/overlap.py"
