# Analyses of each run's update beyond sparsity: its rank (paper Table 2), where it lands (Fig. 3), its size
# in half bf16 ulps (the ulp account), how it grows during training (section 6), and matched comparisons
# between runs (algorithms, ablations, data).

from subnet_rl.stage_outputs import checks_of


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


# Runs whose weights are fp32: the ulp account measures their updates in half bf16 ulps (bf16 weights store
# updates already rounded; the ulp_summary table gives them a row saying so).
ULP_RUNS = [r for r in RUNS if run_spec(r).precision == "fp32"]


rule ulp:
    input:
        before=lambda wildcards: start_of(wildcards.run),
        after="results/checkpoints/full/{run}",
    output:
        "results/ulp/{run}.parquet",
    params:
        code=code("ulp.py"),
    threads: 1
    resources:
        mem_mb=resource("diff", "mem_mb", 2000),
        runtime=resource("diff", "runtime", 20),
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/ulp/{run}.log",
    benchmark:
        "results/benchmarks/ulp/{run}.tsv"
    script:
        "../scripts/ulp.py"


rule analysis_tables:
    input:
        ranks=expand("results/rank/{run}.parquet", run=RUNS),
        diffs=expand("results/diff/full/{run}.parquet", run=RUNS),
        ulps=expand("results/ulp/{run}.parquet", run=ULP_RUNS),
        checked=checks_of("analysis_tables"),
    output:
        **table_outputs("rank", "layers", "ulp", "ulp_summary"),
    params:
        code=code("analysis_tables.py"),
        runs={run: run_spec(run).as_dict() for run in RUNS},
        criterion=config["analyses"]["criterion"],
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/analysis_tables.log",
    benchmark:
        "results/benchmarks/analysis_tables.tsv"
    script:
        "../scripts/analysis_tables.py"


rule dynamics:
    input:
        start=lambda wildcards: start_of(wildcards.run),
        run="results/checkpoints/full/{run}",
        # The start -> final comparison the diff and mask stages made (the mask is used where its
        # criterion is analyses.criterion; see subnet_rl.dynamics).
        diff="results/diff/full/{run}.parquet",
        mask="results/masks/{run}.safetensors",
    output:
        steps="results/dynamics/{run}/steps.parquet",
        split="results/dynamics/{run}/split.parquet",
    params:
        code=code("dynamics.py"),
        steps=lambda wildcards: run_spec(wildcards.run).steps,
        criterion=config["analyses"]["criterion"],
    threads: resource("diff", "threads", 1)
    resources:
        mem_mb=resource("diff", "mem_mb", 2000),
        runtime=resource("diff", "runtime", 20),
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/dynamics/{run}.log",
    benchmark:
        "results/benchmarks/dynamics/{run}.tsv"
    script:
        "../scripts/dynamics.py"


rule comparison_tables:
    input:
        sparsity="results/tables/sparsity.csv",
        pairs=sorted(set(PAIR_FILES.values())),
        dynamics_steps=expand("results/dynamics/{run}/steps.parquet", run=DYNAMICS_RUNS),
        dynamics_split=expand("results/dynamics/{run}/split.parquet", run=DYNAMICS_RUNS),
        checked=checks_of("comparison_tables"),
    output:
        **table_outputs(*COMPARISON_TABLES),
    params:
        code=code("comparison_tables.py"),
        runs={run: run_spec(run).as_dict() for run in RUNS},
        pairs=PAIR_FILES,
        criterion=config["analyses"]["criterion"],
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/comparison_tables.log",
    benchmark:
        "results/benchmarks/comparison_tables.tsv"
    script:
        "../scripts/comparison_tables.py"


# Runs that recorded their step-level sparsity (`step_sparsity`) during training: the records sit in their
# checkpoints (step_sparsity.parquet), so the tables read the checkpoint folders; with none, the tables
# are written empty and the figure says it was not measured.
STEP_SPARSITY_RUNS = [r for r in RUNS if run_spec(r).step_sparsity]


rule step_sparsity_table:
    input:
        checkpoints=expand("results/checkpoints/full/{run}", run=STEP_SPARSITY_RUNS),
        # each record's total is held against the entries its run's diff compares
        diffs=expand("results/diff/full/{run}.parquet", run=STEP_SPARSITY_RUNS),
        checked=checks_of("step_sparsity_table"),
    output:
        **table_outputs("step_sparsity", "step_sparsity_summary"),
    params:
        code=code("step_sparsity_table.py"),
        runs={run: run_spec(run).as_dict() for run in STEP_SPARSITY_RUNS},
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/step_sparsity_table.log",
    benchmark:
        "results/benchmarks/step_sparsity_table.tsv"
    script:
        "../scripts/step_sparsity_table.py"
