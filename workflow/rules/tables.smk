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
        sparsity_md=report(
            "results/tables/sparsity.md",
            caption="../report/sparsity.rst",
            category="Tables",
        ),
        sparsity_csv="results/tables/sparsity.csv",
        subnetwork_md=report(
            "results/tables/subnetwork.md",
            caption="../report/subnetwork.rst",
            category="Tables",
        ),
        subnetwork_csv="results/tables/subnetwork.csv",
        overlap_md=report(
            "results/tables/overlap.md",
            caption="../report/overlap.rst",
            category="Tables",
        ),
        overlap_csv="results/tables/overlap.csv",
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
        md=report(
            "results/tables/pairs.md",
            caption="../report/pairs.rst",
            category="Tables",
        ),
        csv="results/tables/pairs.csv",
    params:
        code=code("pairs_table.py"),
        pairs=config.get("checkpoint_pairs", {}),
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/pairs_table.log",
    benchmark:
        "results/benchmarks/pairs_table.tsv"
    script:
        "../scripts/pairs_table.py"
