rule train_full:
    input:
        unpack(training_inputs),
    output:
        directory("results/checkpoints/full/{run}"),
    params:
        code=code("train.py"),
        spec=lambda wildcards: run_spec(wildcards.run).as_dict(),
        cpu_processes=resource("train", "cpu_processes", False),
    threads: resource("train", "threads", 1)
    resources:
        gpu=resource("train", "gpu", 0),
        mem_mb=resource("train", "mem_mb", 4000),
        runtime=resource("train", "runtime", 60),
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/train/full/{run}.log",
    benchmark:
        "results/benchmarks/train/full/{run}.tsv"
    script:
        "../scripts/train.py"


rule train_subnetwork:
    input:
        unpack(training_inputs),
        mask="results/masks/{run}.safetensors",
    output:
        directory("results/checkpoints/subnet/{run}"),
    params:
        code=code("train.py"),
        spec=lambda wildcards: run_spec(wildcards.run).as_dict(),
        cpu_processes=resource("train", "cpu_processes", False),
    threads: resource("train", "threads", 1)
    resources:
        gpu=resource("train", "gpu", 0),
        mem_mb=resource("train", "mem_mb", 4000),
        runtime=resource("train", "runtime", 60),
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/train/subnet/{run}.log",
    benchmark:
        "results/benchmarks/train/subnet/{run}.tsv"
    script:
        "../scripts/train.py"


rule train_random_subnetwork:
    input:
        unpack(training_inputs),
        mask="results/masks/random/{run}--{control}.safetensors",
    output:
        directory("results/checkpoints/random/{run}--{control}"),
    params:
        code=code("train.py"),
        spec=lambda wildcards: run_spec(wildcards.run).as_dict(),
        cpu_processes=resource("train", "cpu_processes", False),
    threads: resource("train", "threads", 1)
    resources:
        gpu=resource("train", "gpu", 0),
        mem_mb=resource("train", "mem_mb", 4000),
        runtime=resource("train", "runtime", 60),
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/train/random/{run}--{control}.log",
    benchmark:
        "results/benchmarks/train/random/{run}--{control}.tsv"
    script:
        "../scripts/train.py"
