import re

from snakemake.utils import validate

from subnet_rl.config import (
    RunSpec,
    check_references,
    coerce_scientific_notation,
    sort_keys_in_place,
)
from subnet_rl.jobs import configure_hub_environment, download_slug, hub_downloads

coerce_scientific_notation(config)


validate(config, schema="../schemas/config.schema.yaml")
check_references(config)
sort_keys_in_place(config)

configure_hub_environment(config)

RUNS = sorted(config.get("runs", {}))
SUBNET_RUNS = [r for r in RUNS if config["runs"][r].get("subnetwork", False)]
WARMUP = "warmup" in config.get("model", {})
PAIRS = sorted(config.get("checkpoint_pairs", {}))
DOWNLOADS = hub_downloads(config)


wildcard_constraints:
    dataset="[A-Za-z0-9][A-Za-z0-9_.-]*",
    run="[A-Za-z0-9][A-Za-z0-9_.-]*",
    name="[A-Za-z0-9][A-Za-z0-9_.-]*",
    variant="base|full|subnet|subnet_vs_full|pairs",
    download="|".join(re.escape(d) for d in DOWNLOADS) or "none",
    split="train|test",


def run_spec(run):
    return RunSpec.from_config(config, run)


def resource(stage, key, default):
    return config["resources"].get(stage, {}).get(key, default)


def checkpoint_dir(variant, name):
    return f"results/checkpoints/{variant}/{name}"


START = checkpoint_dir("base", "start")


def dataset_file(dataset, split):
    return f"results/data/{dataset}/{split}.parquet"


def training_inputs(wildcards):
    spec = run_spec(wildcards.run)
    inputs = {"start": START, "train": dataset_file(spec.dataset, "train")}
    if spec.algorithm == "dpo":
        inputs["pairs"] = (
            f"results/pairs/{spec.dataset}.parquet"
            if spec.pairs == "on_policy"
            else dataset_file(spec.dataset, "train")
        )
    return inputs


def pair_checkpoint(ref):
    """A pair's side: the download record of a hub model, or a local checkpoint as it is."""
    if ref["source"] == "hub":
        return f"results/downloads/{download_slug(ref)}.json"
    return ref["name"]


def diff_inputs(wildcards):
    if wildcards.variant == "pairs":
        pair = config["checkpoint_pairs"][wildcards.name]
        return {"before": pair_checkpoint(pair["before"]), "after": pair_checkpoint(pair["after"])}
    before, after = {
        "base": (checkpoint_dir("base", "init"), checkpoint_dir("base", "start")),
        "full": (START, checkpoint_dir("full", wildcards.name)),
        "subnet": (START, checkpoint_dir("subnet", wildcards.name)),
        "subnet_vs_full": (
            checkpoint_dir("full", wildcards.name),
            checkpoint_dir("subnet", wildcards.name),
        ),
    }[wildcards.variant]
    return {"before": before, "after": after}


def diff_tolerances(wildcards):
    if wildcards.variant == "subnet_vs_full":
        return config["subnetwork"]["compare_tolerances"]
    return config["diff"]["tolerances"]


def evaluation_test_file(wildcards):
    """A run is scored on its own dataset; base checkpoints on the warmup (else the alphabetically first) one."""
    if wildcards.variant == "base":
        dataset = config["model"].get("warmup", {}).get("dataset", min(config["datasets"]))
    else:
        dataset = run_spec(wildcards.name).dataset
    return dataset_file(dataset, "test")


def evaluated_checkpoints():
    names = [("base", "start")] + [("full", r) for r in RUNS]
    names += [("subnet", r) for r in SUBNET_RUNS]
    if WARMUP:
        names.append(("base", "init"))
    return names


def final_tables():
    tables = ["sparsity", "subnetwork", "overlap"] if RUNS else []
    tables += ["pairs"] if PAIRS else []
    return expand("results/tables/{table}.{ext}", table=tables, ext=["md", "csv"])
