# Analyses of each run's update beyond sparsity: its rank (paper Table 2) and where it lands (Fig. 3).


rule rank:
    input:
        before=lambda wildcards: start_of(wildcards.run),
        after="results/checkpoints/full/{run}",
    output:
        "results/rank/{run}.parquet",
    params:
        code=code("rank.py"),
        rtol=config["analyses"]["rank_rtol"],
    threads: resource("evaluate", "threads", 1)
    resources:
        gpu=resource("evaluate", "gpu", 0),
        mem_mb=resource("diff", "mem_mb", 2000),
        runtime=resource("diff", "runtime", 20),
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/rank/{run}.log",
    benchmark:
        "results/benchmarks/rank/{run}.tsv"
    script:
        "../scripts/rank.py"


rule analysis_tables:
    input:
        ranks=expand("results/rank/{run}.parquet", run=RUNS),
        diffs=expand("results/diff/full/{run}.parquet", run=RUNS),
    output:
        rank_md=report(
            "results/tables/rank.md",
            caption="../report/rank.rst",
            category="Tables",
        ),
        rank_csv="results/tables/rank.csv",
        layers_md=report(
            "results/tables/layers.md",
            caption="../report/layers.rst",
            category="Tables",
        ),
        layers_csv="results/tables/layers.csv",
    params:
        code=code("analysis_tables.py"),
        runs={run: run_spec(run).as_dict() for run in RUNS},
        layers_criterion=config["analyses"]["layers_criterion"],
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/analysis_tables.log",
    benchmark:
        "results/benchmarks/analysis_tables.tsv"
    script:
        "../scripts/analysis_tables.py"
