# Training: every run in full, its subnetwork (the run's own mask) and random-mask controls, all from the
# run's start checkpoint. One rule; the subnetwork variants differ only in their mask, output and log.


rule train_full:
    input:
        unpack(training_inputs),
    output:
        directory("results/checkpoints/full/{run}"),
    params:
        code=code("train.py"),
        spec=lambda wildcards: run_spec(wildcards.run).as_dict(),
        launch=TRAIN_LAUNCH,
    threads: resource("train", "threads", 1)
    resources:
        **TRAIN_RESOURCES,
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/train/full/{run}.log",
    benchmark:
        "results/benchmarks/train/full/{run}.tsv"
    script:
        "../scripts/train.py"


use rule train_full as train_subnetwork with:
    input:
        unpack(training_inputs),
        mask="results/masks/{run}.safetensors",
    output:
        directory("results/checkpoints/subnet/{run}"),
    log:
        "results/logs/train/subnet/{run}.log",
    benchmark:
        "results/benchmarks/train/subnet/{run}.tsv"


use rule train_full as train_random_subnetwork with:
    input:
        unpack(training_inputs),
        mask="results/masks/random/{run}--{control}.safetensors",
    output:
        directory("results/checkpoints/random/{run}--{control}"),
    log:
        "results/logs/train/random/{run}--{control}.log",
    benchmark:
        "results/benchmarks/train/random/{run}--{control}.tsv"
