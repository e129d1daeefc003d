from subnet_rl.stage_checks import checked_inputs, diff_pairs
from subnet_rl.stage_outputs import checks_of

# Old tables, figures and findings stay until their inputs are known good. Snakemake deletes a job's
# outputs when the job starts (and a failed job's outputs after it), so each presentation rule takes
# `checks_of(<rule>)` as an input: a `check_inputs` job reads every other input of that rule first
# (Parquet, CSV and JSON readable, with the columns their readers need; each diff table with one row per
# tensor of its two checkpoints) and fails, naming the bad file and the rule that writes it, before the
# rule's job starts. Not `update()`: after a failed job Snakemake restores an update() output but
# records it as made from the new inputs and params, so the next run finds stale tables up to date.


rule check_inputs:
    input:
        unpack(lambda wildcards: checked_inputs(getattr(rules, wildcards.stage), checks_of(wildcards.stage),
                                                diff_inputs)),
    output:
        "results/tables/checks/{stage}.json",
    wildcard_constraints:
        stage="[A-Za-z0-9_]+",
    params:
        code=code("check_inputs.py"),
        diffs=lambda wildcards, input: diff_pairs(input.files, diff_inputs),
    localrule: True
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/checks/{stage}.log",
    benchmark:
        "results/benchmarks/checks/{stage}.tsv"
    script:
        "../scripts/check_inputs.py"


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
        checked=checks_of("tables"),
    output:
        **table_outputs("sparsity", "subnetwork", "overlap"),
    params:
        code=code("tables.py"),
        runs={run: run_spec(run).as_dict() for run in RUNS},
        # the warmup's settings with their defaults filled in (`warmup_run`), as its training used them
        warmup=warmup_run(config["model"]["warmup"]).as_dict() if WARMUP else None,
        random_controls=RANDOM_CONTROLS,
        max_clipped_share=config["evaluate"]["max_clipped_share"],
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
        checked=checks_of("pairs_table"),
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


rule start_models_table:
    input:
        evals=start_model_evaluations(),
        checked=checks_of("start_models_table"),
    output:
        **table_outputs("start_models"),
    params:
        code=code("start_models_table.py"),
        checkpoints=start_checkpoints(config),
        max_clipped_share=config["evaluate"]["max_clipped_share"],
    conda:
        "../../envs/subnet-rl.yaml"
    log:
        "results/logs/start_models_table.log",
    benchmark:
        "results/benchmarks/start_models_table.tsv"
    script:
        "../scripts/start_models_table.py"
