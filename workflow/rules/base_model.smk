# The start checkpoint of every run: the embedded tiny model built offline and SFT-warmed, or a
# pretrained model (local folder or hub id), optionally SFT-warmed too.

INIT_OR_START = checkpoint_dir("base", "init") if WARMUP else START


if RUNS and config["model"]["source"] == "embedded":

    rule build_model:
        output:
            directory(INIT_OR_START),
        params:
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

elif RUNS:

    rule fetch_model:
        output:
            directory(INIT_OR_START),
        params:
            source=config["model"]["source"],
            name=config["model"]["name"],
            revision=config["model"].get("revision"),
            cache_dir=config["model"].get("cache_dir"),
        conda:
            "../../envs/subnet-rl.yaml"
        log:
            "results/logs/base/fetch_model.log",
        benchmark:
            "results/benchmarks/base/fetch_model.tsv"
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
            spec=config["model"]["warmup"],
        threads: resource("train", "threads", 1)
        resources:
            gpu=resource("train", "gpu", 0),
            mem_mb=resource("train", "mem_mb", 4000),
            runtime=resource("train", "runtime", 60),
        conda:
            "../../envs/subnet-rl.yaml"
        log:
            "results/logs/base/warmup.log",
        benchmark:
            "results/benchmarks/base/warmup.tsv"
        script:
            "../scripts/warmup.py"
