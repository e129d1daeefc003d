# The start checkpoints of the runs: the embedded tiny model built offline and SFT-warmed, or
# pretrained models (local folders or hub ids) fetched as they are, the config's `model` optionally
# SFT-warmed too.

INIT_OR_START = checkpoint_dir("base", "init") if WARMUP else START


if USES_MODEL and config["model"]["source"] == "embedded":

    rule build_model:
        output:
            directory(INIT_OR_START),
        params:
            code=code("build_model.py"),
            spec=config["model"]["embedded"],
            seed=config["model"]["seed"],
        conda:
            "../../envs/subnet-rl.yaml"
        log:
            "results/logs/base/build_model.log",
        benchmark:
            "results/benchmarks/base/build_model.tsv"
        script:
            "../scripts/build_model.py"


rule fetch_model:
    output:
        directory("results/checkpoints/base/{model}"),
    params:
        code=code("fetch_model.py"),
        source=lambda wildcards: PRETRAINED[wildcards.model]["source"],
        name=lambda wildcards: PRETRAINED[wildcards.model]["name"],
        revision=lambda wildcards: PRETRAINED[wildcards.model].get("revision"),
        cache_dir=lambda wildcards: PRETRAINED[wildcards.model].get("cache_dir"),
        config_key=lambda wildcards: (
            f"models.{wildcards.model}.name" if wildcards.model in config.get("models", {}) else "model.name"
        ),
    resources:
        mem_mb=resource("download", "mem_mb", 2000),
        runtime=resource("download", "runtime", 240),
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/base/fetch_model/{model}.log",
    benchmark:
        "results/benchmarks/base/fetch_model/{model}.tsv"
    script:
        "../scripts/fetch_model.py"


if WARMUP:

    rule warmup:
        input:
            init=INIT_OR_START,
            train=dataset_file(config["model"]["warmup"]["dataset"], "train"),
        output:
            directory(START),
        params:
            code=code("warmup.py"),
            spec=config["model"]["warmup"],
            launch=TRAIN_LAUNCH,
        threads: resource("train", "threads", 1)
        resources:
            **TRAIN_RESOURCES,
        conda:
            "../../envs/subnet-rl.yaml"
        log:
            "results/logs/base/warmup.log",
        benchmark:
            "results/benchmarks/base/warmup.tsv"
        script:
            "../scripts/warmup.py"
