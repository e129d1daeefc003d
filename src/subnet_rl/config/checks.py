"""Cross-field checks of a validated config that a JSON schema cannot express; each error names the key
and the fix, before any job starts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..algorithms import get_algorithm
from ..hub_refs import check_hub_refs
from ..tasks import get_task
from .spec import RunSpec, dataset_task, start_models, warmup_run


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
    if warmup:
        _check_trackers(warmup_run(warmup), "model.warmup")
    for name, run in config.get("runs", {}).items():
        for key in ("dataset", "eval_dataset"):
            if key in run and run[key] not in datasets:
                raise ValueError(f"runs.{name}.{key}: {run[key]!r} is not under 'datasets' (known: {sorted(datasets)})")
        if "model" in run and run["model"] not in models:
            raise ValueError(f"runs.{name}.model: {run['model']!r} is not under 'models' (known: {sorted(models)}); "
                             "leave it out to start from the config's `model`")
        spec = RunSpec.from_config(config, name)
        _check_run_task(spec, datasets)
        _check_trackers(spec, f"runs.{name}")
    _check_chat_templates(config)
    _check_vllm(config)


def _check_dataset(name: str, dataset: dict[str, Any]) -> None:
    task = get_task(dataset_task(dataset))
    reward = dataset.get("reward")
    if reward and reward not in task.rewards:
        offers = f"it offers {list(task.rewards)}" if task.rewards else "it scores nothing: leave `reward` out"
        raise ValueError(f"datasets.{name}.reward: task {task.name!r} has no {reward!r} reward; {offers}")
    columns = dataset.get("columns", {})
    if dataset["source"] == "synthetic":
        _check_synthetic_size(name, dataset)
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


def _check_synthetic_size(name: str, dataset: dict[str, Any]) -> None:
    """A synthetic dataset draws distinct problems: asking for more than its digits allow fails here, not in
    the dataset job."""
    from ..tasks import arithmetic

    digits = dataset["digits"]
    if dataset_task(dataset) == "gsm8k":
        operations = tuple(dataset.get("operations", arithmetic.OPERATIONS))
        available = arithmetic.problem_count(digits, dataset.get("second_digits", digits), operations)
    else:
        available = (10 ** digits) ** 2
    wanted = dataset["n_train"] + dataset["n_test"]
    if wanted > available:
        raise ValueError(f"datasets.{name}: n_train + n_test = {wanted}, and its digits give only {available} "
                         "distinct problems; lower n_train/n_test or raise digits")


def _check_parquet_rows(name: str, dataset: dict[str, Any]) -> None:
    """Null, empty or non-text prompts/answers, empty splits, duplicate prompts and test prompts in train,
    refused before any job (a hub dataset's rows are checked by its dataset job: nothing is downloaded
    to validate a config). Reads only the columns the task checks."""
    from ..data import check_parquet_rows

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


def _check_trackers(spec: RunSpec, where: str) -> None:
    """A tracker whose package is missing would fail hours later, when the Trainer starts: say so now."""
    import importlib.util

    for tracker in spec.report_to:
        package = TRACKER_PACKAGES[tracker]
        if importlib.util.find_spec(package) is None:
            raise ValueError(f"{where}.report_to: {tracker!r} needs the Python package {package!r}, which "
                             f"is not installed here; `pip install {package}` into .venv, or drop {tracker!r}")


def _check_vllm(config: dict[str, Any]) -> None:
    """vLLM asked for where it cannot be imported stops here, not in a GPU job hours later."""
    import importlib.util

    asks = [key for key, section in (("generation.engine", config.get("generation")),
                                     ("evaluate.engine", config.get("evaluate"))) if (section or {}).get("engine") == "vllm"]
    if asks and importlib.util.find_spec("vllm") is None:
        raise ValueError(f"{asks[0]}: 'vllm' needs the Python package 'vllm', which is not installed here (it needs "
                         "a CUDA machine: `pip install vllm` there); use engine: hf")


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
