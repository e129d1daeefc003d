"""Datasets as Parquet splits with explicit columns: prompt, answer, chosen, rejected.

Sources: the offline synthetic task (default), a hub dataset or local dataset folder through
`datasets.load_dataset`, or local Parquet files. All end in the same two files, so later stages never
care where the data came from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from . import task
from .atomic import write_parquet

COLUMNS = ["prompt", "answer", "chosen", "rejected"]
SPLITS = ("train", "test")


def synthetic_addition(digits: int, n_train: int, n_test: int, seed: int) -> dict[str, pd.DataFrame]:
    splits = task.split_problems(digits, n_train, n_test, seed)
    return {
        name: pd.DataFrame(
            [{"prompt": p.prompt, "answer": p.answer, "chosen": p.answer, "rejected": p.wrong_answer} for p in problems],
            columns=COLUMNS,
        )
        for name, problems in zip(SPLITS, splits)
    }


def _standardise(df: pd.DataFrame, columns: dict[str, str], origin: str) -> pd.DataFrame:
    """Rename source columns to ours; `chosen`/`rejected` default to answer/empty when absent."""
    renamed = df.rename(columns={src: ours for ours, src in columns.items()})
    missing = [c for c in ("prompt", "answer") if c not in renamed.columns]
    if missing:
        raise ValueError(f"{origin}: no column for {missing}; columns are {list(df.columns)}. "
                         f"Map them with `columns: {{prompt: <name>, answer: <name>}}` in the dataset config")
    if "chosen" not in renamed.columns:
        renamed["chosen"] = renamed["answer"]
    if "rejected" not in renamed.columns:
        renamed["rejected"] = ""
    return renamed[COLUMNS].astype(str).reset_index(drop=True)


def load_hub(path: str, columns: dict[str, str], splits: dict[str, str], name: str | None = None,
             revision: str | None = None, cache_dir: str | None = None) -> dict[str, pd.DataFrame]:
    """Load a hub dataset id (or a local dataset folder) with `datasets.load_dataset`."""
    from datasets import load_dataset

    out = {}
    for ours, theirs in splits.items():
        ds = load_dataset(path, name, split=theirs, revision=revision, cache_dir=cache_dir)
        out[ours] = _standardise(ds.to_pandas(), columns, f"{path} [{theirs}]")
    return out


def load_parquet(files: dict[str, str], columns: dict[str, str]) -> dict[str, pd.DataFrame]:
    out = {}
    for split, file in files.items():
        if not Path(file).is_file():
            raise FileNotFoundError(f"dataset file {file} (split {split}) does not exist; fix `files.{split}` in the config")
        out[split] = _standardise(pd.read_parquet(file), columns, file)
    return out


def build_dataset(spec: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Dispatch on `spec['source']` (a validated `datasets.<name>` config entry)."""
    source = spec["source"]
    if source == "synthetic":
        return synthetic_addition(spec["digits"], spec["n_train"], spec["n_test"], spec["seed"])
    columns = spec.get("columns", {})
    if source == "hub":
        return load_hub(spec["path"], columns, spec.get("splits", {"train": "train", "test": "test"}),
                        spec.get("name"), spec.get("revision"), spec.get("cache_dir"))
    if source == "parquet":
        return load_parquet(spec["files"], columns)
    raise ValueError(f"unknown dataset source {source!r}; use synthetic, hub or parquet")


def write_dataset(splits: dict[str, pd.DataFrame], out: dict[str, str | os.PathLike]) -> None:
    for split in SPLITS:
        if split not in splits or splits[split].empty:
            raise ValueError(f"dataset has no rows for split {split!r}")
        write_parquet(splits[split], out[split])
