rule mask:
    input:
        before=lambda wildcards: start_of(wildcards.run),
        after="results/checkpoints/full/{run}",
    output:
        "results/masks/{run}.safetensors",
    params:
        code=code("mask.py"),
        criterion=config["mask"],
    threads: resource("diff", "threads", 1)
    resources:
        mem_mb=resource("diff", "mem_mb", 2000),
        runtime=resource("diff", "runtime", 20),
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/mask/{run}.log",
    benchmark:
        "results/benchmarks/mask/{run}.tsv"
    script:
        "../scripts/mask.py"


rule random_mask:
    input:
        "results/masks/{run}.safetensors",
    output:
        "results/masks/random/{run}--{control}.safetensors",
    params:
        code=code("random_mask.py"),
        density=lambda wildcards: None if wildcards.control == "same" else float(wildcards.control),
        seed=lambda wildcards: run_spec(wildcards.run).seed,
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/mask/random/{run}--{control}.log",
    benchmark:
        "results/benchmarks/mask/random/{run}--{control}.tsv"
    script:
        "../scripts/random_mask.py"
