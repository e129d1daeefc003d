"""Typed run specs built from the validated workflow config (one place for every training knob)."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .algorithms import get_algorithm
from .hub_refs import check_hub_refs
from .tasks import default_reward, get_task

#: the name of the config's `model` among the start checkpoints (others are named under `models`).
DEFAULT_MODEL = "start"

@dataclass(frozen=True)
class RunSpec:
    """Everything a training run needs; the Snakefile passes it whole as a param, so a change reruns it."""

    name: str
    algorithm: str
    lr: float
    steps: int
    seed: int
    dataset: str
    precision: str = "fp32"          # weights: fp32, or bf16 (stored and updated in bf16)
    autocast: str = "none"           # compute: none (as the weights), or bf16 mixed precision
    deterministic: bool = False      # TrainingArguments.full_determinism (deterministic cuBLAS/cuDNN)
    regime: str = ""
    subnetwork: bool = False
    batch_size: int = 64
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = False
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0      # 0: no gradient clipping
    warmup_steps: int = 0
    max_new_tokens: int = 5          # completion length (GRPO generation)
    max_prompt_length: int = 32      # prompts longer than this fail (or are dropped with drop_overlong)
    max_length: int = 64             # SFT/DPO: prompt + completion; longer would cut the answer away
    drop_overlong: bool = False
    save_every: int = 0              # > 0: snapshot every N steps (training dynamics); 0: final only
    save_steps: int = 0              # > 0: resumable Trainer checkpoint every N steps; 0: none
    report_to: tuple[str, ...] = ()  # trackers (tensorboard, wandb, trackio); () = none
    sharding: str = "auto"           # ddp | fsdp2 | auto (FSDP2 when the memory plan says a replica does not fit)
    # Rollouts of online algorithms (GRPO, RLOO, Online DPO), from the config's `generation` section
    generation_engine: str = "hf"    # hf (the model's generate) | vllm (TRL's vLLM integration)
    vllm_mode: str = "colocate"      # colocate (vLLM in the training processes) | server (`trl vllm-serve`)
    vllm_gpu_memory_utilization: float = 0.3
    vllm_tensor_parallel_size: int = 1
    # Resolved from the run's datasets (not set in a run entry)
    task: str = "addition"
    reward: str | None = "partial"
    eval_dataset: str = ""
    model: str = DEFAULT_MODEL
    # GRPO
    num_generations: int = 8
    temperature: float = 1.0
    kl_beta: float = 0.0
    grpo_loss_type: str = "dapo"     # TRL's default; grpo, dr_grpo, dapo, bnpo
    num_iterations: int = 1          # optimizer steps per generation batch (μ)
    # GRPO and RLOO share num_generations, temperature, kl_beta, num_iterations; Online DPO temperature.
    # Offline preference algorithms (DPO, KTO, ORPO, SimPO)
    dpo_beta: float = 0.1            # DPO, KTO and Online DPO's beta
    sft_weight: float = 1.0          # DPO and SimPO (cpo_alpha): weight of an added SFT loss on the chosen answer
    orpo_beta: float = 0.1           # ORPO's lambda (TRL's beta)
    simpo_beta: float = 2.0          # SimPO's beta (reward scale)
    simpo_gamma: float = 0.5         # SimPO's target reward margin
    pairs: str = "on_policy"         # on_policy | off_policy | dataset

    def __post_init__(self):
        # One spelling of the trackers (a YAML string or list, a JSON list), so equal specs compare equal.
        trackers = (self.report_to,) if isinstance(self.report_to, str) else tuple(self.report_to)
        object.__setattr__(self, "report_to", tuple(t for t in trackers if t != "none"))

    @classmethod
    def from_config(cls, config: dict[str, Any], name: str) -> "RunSpec":
        """Run entry over the algorithm's defaults over the `training` defaults."""
        try:
            run = config["runs"][name]
        except KeyError:
            raise KeyError(f"no run named {name!r} under 'runs' in the config") from None
        get_algorithm(run["algorithm"])
        merged = {**config.get("training", {}), **config.get(run["algorithm"], {}), **run}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(merged) - known - {"algorithm"})
        if unknown:
            raise ValueError(f"runs.{name}: unknown setting(s) {unknown}; known: {sorted(known)}")
        merged.update(generation_settings(config.get("generation") or {}))
        dataset = config["datasets"][run["dataset"]]
        merged["task"] = dataset_task(dataset)
        merged["reward"] = dataset_reward(dataset)
        merged.setdefault("eval_dataset", run["dataset"])
        return cls(name=name, **{k: v for k, v in merged.items() if k in known and k != "name"})

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: the config's `generation` keys -> RunSpec fields
GENERATION_KEYS = {"engine": "generation_engine", "vllm_mode": "vllm_mode",
                   "gpu_memory_utilization": "vllm_gpu_memory_utilization",
                   "tensor_parallel_size": "vllm_tensor_parallel_size"}


def generation_settings(section: dict[str, Any]) -> dict[str, Any]:
    return {GENERATION_KEYS[k]: v for k, v in section.items() if k in GENERATION_KEYS}


def dataset_task(dataset: dict[str, Any]) -> str:
    """A dataset's task (synthetic data is the addition task)."""
    return dataset.get("task", "addition")


def dataset_reward(dataset: dict[str, Any]) -> str | None:
    return dataset.get("reward") or default_reward(dataset_task(dataset))


@dataclass(frozen=True)
class WarmupSpec:
    """SFT that turns the freshly built model into a partially competent start checkpoint."""

    dataset: str
    lr: float
    steps: int
    batch_size: int = 64
    warmup_steps: int = 0
    seed: int = 0
    weight_decay: float = 0.0
    max_prompt_length: int = 32
    max_length: int = 64
    drop_overlong: bool = False
    autocast: str = "none"
    deterministic: bool = False

    def as_run(self) -> RunSpec:
        return RunSpec(name="warmup", algorithm="sft", lr=self.lr, steps=self.steps, seed=self.seed,
                       dataset=self.dataset, batch_size=self.batch_size, warmup_steps=self.warmup_steps,
                       weight_decay=self.weight_decay, max_prompt_length=self.max_prompt_length,
                       max_length=self.max_length, drop_overlong=self.drop_overlong, eval_dataset=self.dataset,
                       autocast=self.autocast, deterministic=self.deterministic)


_SCIENTIFIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def coerce_scientific_notation(node: Any) -> Any:
    """Turn strings like '1e-4' into floats, in place (YAML 1.1 reads a dot-less exponent as a string).

    Anything else that is not a number (e.g. 'abc') stays a string, so schema validation names it.
    """
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        if isinstance(value, str) and _SCIENTIFIC.match(value.strip()):
            node[key] = float(value)
        else:
            coerce_scientific_notation(value)
    return node


def check_references(config: dict[str, Any]) -> None:
    """Cross-field checks a JSON schema cannot express; each error names the key and the fix."""
    check_hub_refs(config)
    datasets = config.get("datasets", {})
    for name, dataset in datasets.items():
        _check_dataset(name, dataset)
    models = set(config.get("models", {}))
    warmup = config.get("model", {}).get("warmup")
    if warmup and warmup["dataset"] not in datasets:
        raise ValueError(f"model.warmup.dataset: {warmup['dataset']!r} is not under 'datasets' "
                         f"(known: {sorted(datasets)})")
    if warmup and not get_task(dataset_task(datasets[warmup["dataset"]])).scores:
        raise ValueError(f"model.warmup.dataset: {warmup['dataset']!r} has task 'preference': the warmup is SFT "
                         "on reference answers and is scored; name a dataset with a scoring task")
    for name, run in config.get("runs", {}).items():
        for key in ("dataset", "eval_dataset"):
            if key in run and run[key] not in datasets:
                raise ValueError(f"runs.{name}.{key}: {run[key]!r} is not under 'datasets' (known: {sorted(datasets)})")
        if "model" in run and run["model"] not in models:
            raise ValueError(f"runs.{name}.model: {run['model']!r} is not under 'models' (known: {sorted(models)}); "
                             "leave it out to start from the config's `model`")
        spec = RunSpec.from_config(config, name)
        _check_run_task(spec, datasets)
        _check_trackers(spec)
    _check_chat_templates(config)
    _check_vllm(config)


def _check_dataset(name: str, dataset: dict[str, Any]) -> None:
    task = get_task(dataset_task(dataset))
    reward = dataset.get("reward")
    if reward and reward not in task.rewards:
        offers = f"it offers {list(task.rewards)}" if task.rewards else "it scores nothing: leave `reward` out"
        raise ValueError(f"datasets.{name}.reward: task {task.name!r} has no {reward!r} reward; {offers}")
    columns = dataset.get("columns", {})
    if dataset["source"] == "hub":
        unmapped = [c for c in task.required_columns if c not in columns]
        if unmapped:
            raise ValueError(f"datasets.{name}.columns: task {task.name!r} needs {list(task.required_columns)}; "
                             f"name the source column of {unmapped} (e.g. `columns: {{{unmapped[0]}: <column>}}`)")
    elif dataset["source"] == "parquet":
        for split, file in dataset["files"].items():
            if not Path(file).is_file():
                raise ValueError(f"datasets.{name}.files.{split}: {file} does not exist")
            import pyarrow.parquet as pq

            present = set(pq.read_schema(file).names)
            mapped = {ours: columns.get(ours, ours) for ours in task.required_columns}
            missing = {ours: theirs for ours, theirs in mapped.items() if theirs not in present}
            if missing:
                raise ValueError(f"datasets.{name}.columns: task {task.name!r} needs column(s) {sorted(missing)}, "
                                 f"looked up as {sorted(missing.values())} in {file}, which has {sorted(present)}; "
                                 "map them with `columns: {ours: theirs}`")
        _check_parquet_rows(name, dataset)


def _check_parquet_rows(name: str, dataset: dict[str, Any]) -> None:
    """Null, empty or non-text prompts/answers, empty splits, duplicate prompts and test prompts in train,
    refused before any job (a hub dataset's rows are checked by its dataset job: nothing is downloaded
    to validate a config). Reads only the columns the task checks."""
    from .data import check_parquet_rows

    check_parquet_rows(name, dataset)


def _check_run_task(spec: RunSpec, datasets: dict[str, Any]) -> None:
    where = f"runs.{spec.name}"
    algorithm = get_algorithm(spec.algorithm)
    if algorithm.needs and not get_task(spec.task).scores:
        raise ValueError(f"{where}.dataset: {spec.algorithm} needs {algorithm.needs}, and dataset "
                         f"{spec.dataset!r} has task {spec.task!r}; use a dataset with a scoring task")
    if algorithm.reads_pairs:
        dataset = datasets[spec.dataset]
        has_pairs = dataset["source"] == "synthetic" or spec.task == "preference"
        if spec.pairs == "dataset" and not has_pairs:
            raise ValueError(f"{where}.pairs: 'dataset' needs chosen/rejected columns, and dataset {spec.dataset!r} "
                             f"(task {spec.task!r}) has none; use pairs: on_policy or off_policy, or a preference "
                             "dataset")
        if spec.pairs in ("on_policy", "off_policy") and not get_task(spec.task).scores:
            raise ValueError(f"{where}.pairs: {spec.pairs} pairs are built from the task's reference answers and "
                             f"scorer, and dataset {spec.dataset!r} has task 'preference'; use pairs: dataset")
    eval_task = dataset_task(datasets[spec.eval_dataset])
    if not get_task(eval_task).scores:
        raise ValueError(f"{where}.eval_dataset: dataset {spec.eval_dataset!r} has task {eval_task!r}, which scores "
                         "nothing; set `eval_dataset` to a dataset with a scoring task (gsm8k, math, addition)")


#: the package each tracker of `report_to` needs (TRL / transformers import it when training starts).
TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}


def _check_trackers(spec: RunSpec) -> None:
    """A tracker whose package is missing would fail hours later, when the Trainer starts: say so now."""
    import importlib.util

    for tracker in spec.report_to:
        package = TRACKER_PACKAGES[tracker]
        if importlib.util.find_spec(package) is None:
            raise ValueError(f"runs.{spec.name}.report_to: {tracker!r} needs the Python package {package!r}, which "
                             f"is not installed here; `pip install {package}` into .venv, or drop {tracker!r}")


def _check_vllm(config: dict[str, Any]) -> None:
    """vLLM asked for where it cannot be imported stops here, not in a GPU job hours later."""
    import importlib.util

    asks = [key for key, section in (("generation.engine", config.get("generation")),
                                     ("evaluate.engine", config.get("evaluate"))) if (section or {}).get("engine") == "vllm"]
    if asks and importlib.util.find_spec("vllm") is None:
        raise ValueError(f"{asks[0]}: 'vllm' needs the Python package 'vllm', which is not installed here (it needs "
                         "a CUDA machine: `pip install vllm` there); use engine: hf")


def start_models(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every start checkpoint a run may name: the config's `model` (as "start") and those under `models`."""
    return {DEFAULT_MODEL: config.get("model", {}), **config.get("models", {})}


def _check_chat_templates(config: dict[str, Any]) -> None:
    """A chat prompt_format needs a tokenizer with a chat template, checked where the tokenizer is at hand.

    Hub models are checked when their job loads the tokenizer (nothing is downloaded to validate a config).
    """
    datasets, models = config.get("datasets", {}), start_models(config)
    for name in sorted(config.get("runs", {})):
        spec = RunSpec.from_config(config, name)
        for dataset in (spec.dataset, spec.eval_dataset):
            if datasets[dataset].get("prompt_format") != "chat":
                continue
            model, where = models[spec.model], f"datasets.{dataset}.prompt_format"
            if model.get("source") == "embedded":
                raise ValueError(f"{where}: 'chat' needs a tokenizer with a chat template, and the embedded model's "
                                 "character tokenizer has none; use prompt_format: plain, or a pretrained model")
            if model.get("source") == "local" and not folder_has_chat_template(model["name"]):
                raise ValueError(f"{where}: 'chat' needs a tokenizer with a chat template, and {model['name']} has "
                                 "none (no chat_template in tokenizer_config.json, no chat_template.jinja); "
                                 "use prompt_format: plain")


def folder_has_chat_template(folder: str) -> bool:
    path = Path(folder)
    if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
        return True
    config_file = path / "tokenizer_config.json"
    return config_file.is_file() and bool(json.loads(config_file.read_text()).get("chat_template"))


def sort_keys_in_place(node: Any) -> Any:
    """Order every mapping by key, in place.

    Snakemake compares a rule's params by their text, so reordering keys in the YAML (or a tool that
    rewrites it) would otherwise rerun every stage although no setting changed.
    """
    if isinstance(node, dict):
        items = sorted(node.items())
        node.clear()
        node.update(items)
        for value in node.values():
            sort_keys_in_place(value)
    elif isinstance(node, list):
        for value in node:
            sort_keys_in_place(value)
    return node
