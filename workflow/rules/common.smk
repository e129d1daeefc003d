import re
from pathlib import Path

from snakemake.utils import validate

from subnet_rl.algorithms import get_algorithm
from subnet_rl.config import (
    DEFAULT_MODEL,
    RunSpec,
    check_references,
    coerce_scientific_notation,
    dataset_reward,
    dataset_task,
    sort_keys_in_place,
    warmup_run,
)
from subnet_rl.code_version import code_hash
from subnet_rl.config_files import check_config_files
from subnet_rl.hub_refs import hub_refs
from subnet_rl.diff import canonical_label, diff_labels
from subnet_rl.figures import FIGURES
from subnet_rl.tables import COMPARISON_TABLES
from subnet_rl.jobs import configure_hub_environment, download_slug, hub_downloads
from subnet_rl.start_models import start_checkpoints, start_evaluations

# Snakemake's YAML loader keeps the last of two equal keys: a run pasted twice would silently be one.
check_config_files(workflow.configfiles)
coerce_scientific_notation(config)


validate(config, schema="../schemas/config.schema.yaml")
check_references(config)
# Published values keyed by one spelling of each criterion label (tol=1e-5 -> tol=1e-05), or the pairs
# table would silently miss them.
for pair in config.get("checkpoint_pairs", {}).values():
    pair["published"] = {canonical_label(k): v for k, v in pair.get("published", {}).items()}
config["analyses"]["criterion"] = canonical_label(
    config["analyses"]["criterion"] or f"tol={max(config['diff']['tolerances'])}"
)
if config["analyses"]["criterion"] not in diff_labels(config["diff"]):
    raise ValueError(
        f"analyses.criterion: {config['analyses']['criterion']!r} is not a column of the diff "
        f"tables ({sorted(diff_labels(config['diff']))}); name one, or add it under `diff`"
    )
sort_keys_in_place(config)

configure_hub_environment(config)

RUNS = sorted(config.get("runs", {}))
SUBNET_RUNS = [r for r in RUNS if config["runs"][r].get("subnetwork", False)]
WARMUP = "warmup" in config.get("model", {})
# Random-mask controls of subnetwork retraining, as checkpoint names "<run>--<control>".
RANDOM_CONTROLS = [c if c == "same" else f"{c:g}" for c in config["subnetwork"]["random_controls"]]
PAIRS = sorted(config.get("checkpoint_pairs", {}))
DOWNLOADS = hub_downloads(config)
# The config key of each download, for the message when the hub cannot provide it.
DOWNLOAD_KEYS = {download_slug(ref): f"{key}.name" for key, ref in hub_refs(config) if key.startswith("checkpoint_pairs")}
# A config without runs scores its start models alone: (dataset, model) for each start model and each
# dataset of `evaluate.datasets` (default: every scoring one); [] for a study or checkpoint pairs alone.
START_EVALS = start_evaluations(config)
# Whether the config's `model` is built or fetched: a study starts from it, start-model scoring scores it.
USES_MODEL = "model" in config and bool(RUNS or START_EVALS)
# Pretrained start checkpoints fetched as they are: the config's `model` unless it is embedded (as
# "init" when a warmup follows, else "start"), and every entry of `models`.
PRETRAINED = {
    **(
        {("init" if WARMUP else DEFAULT_MODEL): config["model"]}
        if USES_MODEL and config["model"]["source"] != "embedded"
        else {}
    ),
    **config.get("models", {}),
}


wildcard_constraints:
    dataset="[A-Za-z0-9][A-Za-z0-9_.-]*",
    run="[A-Za-z0-9][A-Za-z0-9_.-]*",
    name="[A-Za-z0-9][A-Za-z0-9_.-]*",
    variant="base|full|subnet|subnet_vs_full|pairs",
    scored="base|full|subnet|random",
    control="same|[0-9.eE+-]+",
    model="|".join(re.escape(m) for m in PRETRAINED) or "none",
    download="|".join(re.escape(d) for d in DOWNLOADS) or "none",
    split="train|test",


def code(script):
    """Content hash of a rule's script and the library modules it imports: a rule reruns when that code
    changes, not when a file is touched (the profiles drop Snakemake's mtime-based code trigger)."""
    return code_hash(Path(workflow.basedir) / "workflow" / "scripts" / script)


def run_spec(run):
    return RunSpec.from_config(config, run)


def resource(stage, key, default):
    return config["resources"].get(stage, {}).get(key, default)


# Where training processes run (resources.train): the launcher's settings, and the Slurm request. One node:
# `gpu` GPUs (Slurm --gpus). Several: `nodes` nodes, one task and `gpu` GPUs on each (--gres is per node).
TRAIN_LAUNCH = {
    "gpus": resource("train", "gpu", 0),
    "nodes": resource("train", "nodes", 1),
    "cpu_processes": resource("train", "cpu_processes", False),
    "gpu_mem_gb": resource("train", "gpu_mem_gb", None),
}
TRAIN_RESOURCES = {
    "mem_mb": resource("train", "mem_mb", 4000),
    "runtime": resource("train", "runtime", 60),
    **(
        {"gpu": TRAIN_LAUNCH["gpus"]}
        if TRAIN_LAUNCH["nodes"] == 1
        else {
            "nodes": TRAIN_LAUNCH["nodes"],
            "gres": f"gpu:{TRAIN_LAUNCH['gpus']}",
            "slurm_extra": "--ntasks-per-node=1",
        }
    ),
}


def checkpoint_dir(variant, name):
    return f"results/checkpoints/{variant}/{name}"


START = checkpoint_dir("base", DEFAULT_MODEL)


def start_of(run):
    """The start checkpoint of a run: the config's model, or the entry of `models` it names."""
    return checkpoint_dir("base", run_spec(run).model)


def dataset_file(dataset, split):
    return f"results/data/{dataset}/{split}.parquet"


def task_of(dataset):
    """The dataset's task and reward, as the scoring stages need them."""
    spec = config["datasets"][dataset]
    return {"task": dataset_task(spec), "reward": dataset_reward(spec)}


def pairs_file(spec):
    """The preference pairs a run trains on: sampled from its start model, their off-policy control, or
    the dataset's own chosen/rejected columns."""
    return {
        "on_policy": f"results/pairs/{spec.model}/{spec.dataset}.parquet",
        "off_policy": f"results/pairs_off_policy/{spec.model}/{spec.dataset}.parquet",
        "dataset": dataset_file(spec.dataset, "train"),
    }[spec.pairs]


# The preference pairs of every run that trains on pairs (their likelihoods go into the data table).
PAIR_FILES = {r: pairs_file(run_spec(r)) for r in RUNS if get_algorithm(run_spec(r).algorithm).reads_pairs}
# Runs with snapshots (`save_every`), analysed by the dynamics rule.
DYNAMICS_RUNS = [r for r in RUNS if run_spec(r).save_every]
# Memory plan of every training job (src/subnet_rl/plan/; arithmetic, no torch): one line each on stderr
# when the workflow starts; with resources.train.gpu_mem_gb, a job that cannot fit stops it here.
import sys

from subnet_rl.plan import check_plans, plan_config, plan_line

TRAIN_PLANS = plan_config(config)
if workflow.is_main_process:
    for _plan in TRAIN_PLANS:
        print(plan_line(_plan), file=sys.stderr)
check_plans(TRAIN_PLANS)


def training_inputs(wildcards):
    spec = run_spec(wildcards.run)
    inputs = {"start": start_of(wildcards.run), "train": dataset_file(spec.dataset, "train")}
    if get_algorithm(spec.algorithm).reads_pairs:
        inputs["pairs"] = pairs_file(spec)
    return inputs


def pair_checkpoint(ref):
    """A pair's side: the download record of a hub model, or a local checkpoint as it is."""
    if ref["source"] == "hub":
        return f"results/downloads/{download_slug(ref)}.json"
    return ref["name"]


def diff_inputs(wildcards):
    name, variant = wildcards.name, wildcards.variant
    if variant == "pairs":
        pair = config["checkpoint_pairs"][name]
        return {"before": pair_checkpoint(pair["before"]), "after": pair_checkpoint(pair["after"])}
    if variant == "base":
        return {"before": checkpoint_dir("base", "init"), "after": START}
    if variant == "subnet_vs_full":
        return {"before": checkpoint_dir("full", name), "after": checkpoint_dir("subnet", name)}
    return {"before": start_of(name), "after": checkpoint_dir(variant, name)}


def diff_settings(wildcards):
    """Criteria and the resized-tensor policy of one diff (a checkpoint pair may override `resized`)."""
    settings = {
        "tolerances": config["diff"]["tolerances"],
        "exact_tolerances": config["diff"]["exact_tolerances"],
        "relative": config["diff"]["relative"],
        "resized": config["diff"]["resized"],
    }
    if wildcards.variant == "subnet_vs_full":
        settings.update(tolerances=config["subnetwork"]["compare_tolerances"], exact_tolerances=[], relative=[])
    if wildcards.variant == "pairs":
        settings["resized"] = config["checkpoint_pairs"][wildcards.name].get("resized", settings["resized"])
    return settings


def evaluations():
    """Every (dataset, variant, checkpoint) scored: each run, its start and its subnetwork on the run's
    evaluation dataset; the warmup's init and start on the warmup dataset."""
    scored = set()
    for run in RUNS:
        spec = run_spec(run)
        scored |= {(spec.eval_dataset, "base", spec.model), (spec.eval_dataset, "full", run)}
        if run in SUBNET_RUNS:
            scored.add((spec.eval_dataset, "subnet", run))
            scored |= {(spec.eval_dataset, "random", f"{run}--{c}") for c in RANDOM_CONTROLS}
    if WARMUP:
        dataset = config["model"]["warmup"]["dataset"]
        scored |= {(dataset, "base", "init"), (dataset, "base", DEFAULT_MODEL)}
    return [f"results/eval/{d}/{v}/{n}.parquet" for d, v, n in sorted(scored)]


def overlap_groups():
    """Runs by start checkpoint: masks of different base models are not comparable entry by entry."""
    groups = {}
    for run in RUNS:
        groups.setdefault(run_spec(run).model, []).append(run)
    return groups


# The report's categories, one per analysis, findings first (the report sorts categories by name).
CATEGORY = {
    "findings": "1. Findings",
    "sparsity": "2. Sparsity",
    "algorithms": "2. Sparsity",
    "controls": "2. Sparsity",
    "frontier": "2. Sparsity",
    "sparsity_vs_tolerance": "2. Sparsity",
    "subnetwork": "3. Subnetwork",
    "accuracy": "3. Subnetwork",
    "overlap": "4. Overlap",
    "rank": "5. Rank and layers",
    "layers": "5. Rank and layers",
    "dynamics": "6. Dynamics",
    "dynamics_split": "6. Dynamics",
    "step_sparsity": "6. Dynamics",
    "step_sparsity_summary": "6. Dynamics",
    "data": "7. Data and ablations",
    "ablations": "7. Data and ablations",
    "precision": "7. Data and ablations",
    "ulp": "7. Data and ablations",
    "ulp_summary": "7. Data and ablations",
    "pairs": "8. Checkpoint pairs",
    "pairs_layers": "8. Checkpoint pairs",
}


# The start-model table of a config without runs (the only category such a report has); kept outside the
# dict above, which another change edits.
CATEGORY["start_models"] = "9. Start models"


def table_outputs(*names):
    """Markdown (in the report, under its analysis), CSV and LaTeX of each named table."""
    outputs = {}
    for name in names:
        outputs[f"{name}_md"] = report(
            f"results/tables/{name}.md",
            caption=f"../report/{name}.rst",
            category=CATEGORY[name],
            subcategory="Tables",
        )
        outputs[f"{name}_csv"] = f"results/tables/{name}.csv"
        outputs[f"{name}_tex"] = f"results/tables/{name}.tex"
    return outputs


def start_model_evaluations():
    """The evaluations of a config without runs: each start model on each of its scoring datasets."""
    return [f"results/eval/{d}/base/{m}.parquet" for d, m in START_EVALS]


def final_tables():
    # step_sparsity tables: always, empty where no run records its steps (as dynamics without snapshots)
    tables = ["sparsity", "subnetwork", "overlap", "rank", "layers", "ulp", "ulp_summary", *COMPARISON_TABLES,
              "step_sparsity", "step_sparsity_summary"] if RUNS else []
    tables += ["pairs", "pairs_layers"] if PAIRS else []
    tables += ["start_models"] if START_EVALS else []
    return expand("results/tables/{table}.{ext}", table=tables, ext=["md", "csv", "tex"])


def figure_tables(name):
    """The final tables a figure reads, among those this configuration writes."""
    written = {Path(t).stem for t in final_tables() if t.endswith(".csv")}
    return [f"results/tables/{t}.csv" for t in FIGURES[name].tables if t in written]


def presentation():
    """Figures and findings, for a study (a config with runs); checkpoint pairs alone, and start models
    scored alone, get their tables (there is nothing to compare)."""
    if not RUNS:
        return []
    return ["results/findings.csv", *expand("results/figures/{figure}.{ext}", figure=FIGURES, ext=["png", "pdf"])]


# Colours follow runs: the config's full run list, so a run keeps its colour in every figure.
FIGURE_RUNS = RUNS + (["sft-from-init"] if WARMUP else [])
