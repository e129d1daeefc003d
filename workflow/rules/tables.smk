rule tables:
    input:
        run_diffs=expand("results/diff/full/{run}.parquet", run=RUNS),
        warmup_diff=["results/diff/base/start.parquet"] if WARMUP else [],
        run_checkpoints=expand("results/checkpoints/full/{run}", run=RUNS),
        warmup_checkpoint=[START] if WARMUP else [],
        evals=evaluations(),
        subnet_diffs=expand("results/diff/subnet_vs_full/{run}.parquet", run=SUBNET_RUNS),
        subnet_checkpoints=expand("results/checkpoints/subnet/{run}", run=SUBNET_RUNS),
        overlap="results/overlap/pairs.parquet",
    output:
        **table_outputs("sparsity", "subnetwork", "overlap"),
    params:
        code=code("tables.py"),
        runs={run: run_spec(run).as_dict() for run in RUNS},
        warmup=config.get("model", {}).get("warmup"),
        random_controls=RANDOM_CONTROLS,
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/tables.log",
    benchmark:
        "results/benchmarks/tables.tsv"
    script:
        "../scripts/tables.py"


rule pairs_table:
    input:
        diffs=expand("results/diff/pairs/{name}.parquet", name=PAIRS),
        downloads=expand("results/downloads/{download}.json", download=sorted(DOWNLOADS)),
    output:
        **table_outputs("pairs", "pairs_layers"),
    params:
        code=code("pairs_table.py"),
        pairs=config.get("checkpoint_pairs", {}),
        criterion=config["analyses"]["criterion"],
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/pairs_table.log",
    benchmark:
        "results/benchmarks/pairs_table.tsv"
    script:
        "../scripts/pairs_table.py"
