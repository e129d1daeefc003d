"""Start models scored alone: a config without `runs` evaluates each start checkpoint on its datasets.

A researcher who wants a model's accuracy before any training (is it partly competent on the task, how
many of its answers the token limit cuts) should not need a dummy run. Such a config (`datasets` and
`model` and/or `models`, no `runs`) scores every start model on every dataset of `evaluate.datasets`
(default: each whose task scores) with the ordinary `evaluate` rule, and this module turns those
evaluation Parquets into one table, `results/tables/start_models.*`. There is nothing to compare, so
the figures and findings are not asked for.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .config import DEFAULT_MODEL, dataset_task
from .learning_signal import clipped_note
from .stage_outputs import read_parquet
from .tasks import get_task
from .uncertainty import binomial_standard_error

TITLE = "Start models: greedy accuracy on each scoring dataset, before any training"
#: The table's columns, in order (accuracy, its standard error and the clipped share in % / points).
COLUMNS = ["model", "checkpoint", "dataset", "n", "accuracy (%)", "accuracy SE (points)", "clipped (%)", "warning"]


def start_model_names(config: Mapping[str, Any]) -> list[str]:
    """The start checkpoints a config names: its `model` (as "start") if it has one, then each of `models`."""
    return ([DEFAULT_MODEL] if "model" in config else []) + sorted(config.get("models", {}))


def start_evaluations(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(dataset, start model) pairs a config without runs scores; [] for a study or a pairs-only config.

    `evaluate.datasets` chooses the datasets (default: every one whose task scores). With runs it is
    refused: the runs are scored on their own `eval_dataset`, and a silently ignored key misleads.
    """
    chosen = config.get("evaluate", {}).get("datasets")
    if config.get("runs"):
        if chosen is not None:
            raise ValueError("evaluate.datasets: only for a config without runs (it chooses the datasets its start "
                             "models are scored on); a run is scored on its `eval_dataset`: remove the key")
        return []
    datasets = config.get("datasets", {})
    models = start_model_names(config)
    if not datasets or not models:
        return []
    scoring = sorted(d for d, spec in datasets.items() if get_task(dataset_task(spec)).scores)
    for name in chosen or []:
        if name not in datasets:
            raise ValueError(f"evaluate.datasets: {name!r} is not under 'datasets' (known: {sorted(datasets)})")
        if name not in scoring:
            raise ValueError(f"evaluate.datasets: dataset {name!r} has task {dataset_task(datasets[name])!r}, which "
                             f"scores nothing; name datasets with a scoring task (these score: {scoring})")
    names = sorted(set(chosen)) if chosen is not None else scoring
    if not names:
        raise ValueError("datasets: a config without runs scores its start models, and no dataset here has a "
                         "scoring task (all are 'preference'); add one (addition, gsm8k, math) or add runs")
    return [(dataset, model) for model in models for dataset in names]


def start_checkpoints(config: Mapping[str, Any]) -> dict[str, str]:
    """What each start model is, as the table names it: the hub id or folder (with a pinned revision), or
    the embedded model (and the dataset it is SFT-warmed on)."""
    def described(ref: Mapping[str, Any]) -> str:
        if ref["source"] == "embedded":
            warmup = ref.get("warmup")
            return f"embedded, warmed up on {warmup['dataset']}" if warmup else "embedded"
        return ref["name"] + (f"@{ref['revision']}" if ref.get("revision") else "")

    refs = {DEFAULT_MODEL: config["model"]} if "model" in config else {}
    return {name: described(ref) for name, ref in {**refs, **config.get("models", {})}.items()}


def start_models_table(evals: Iterable[str | os.PathLike], checkpoints: Mapping[str, str],
                       max_clipped_share: float) -> pd.DataFrame:
    """One row per evaluation Parquet (results/eval/<dataset>/base/<model>.parquet): the model, what it
    is, the dataset, the examples scored, greedy accuracy with its binomial standard error, the share
    of completions clipped at max_new_tokens, and a warning when that share passes `max_clipped_share`."""
    rows = []
    for path in evals:
        dataset, model = Path(path).parts[-3], Path(path).name.removesuffix(".parquet")
        scored = read_parquet(path, ["correct", "clipped"])
        n = len(scored)
        accuracy = float(scored["correct"].mean()) if n else math.nan
        clipped = float(scored["clipped"].mean()) if n else math.nan
        rows.append({"model": model, "checkpoint": checkpoints.get(model, ""), "dataset": dataset, "n": n,
                     "accuracy (%)": 100.0 * accuracy,
                     "accuracy SE (points)": 100.0 * binomial_standard_error(accuracy, n),
                     "clipped (%)": 100.0 * clipped,
                     "warning": clipped_note({dataset: clipped}, max_clipped_share)})
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(["model", "dataset"], kind="stable", ignore_index=True)
