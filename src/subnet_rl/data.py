"""Datasets as Parquet splits with explicit columns: prompt, answer, chosen, rejected (those a task uses).

Sources: the offline synthetic tasks (reversed-digit addition, the default; arithmetic in GSM8K's format), a hub dataset or local dataset folder through
`datasets.load_dataset`, or local Parquet files. All end in the same two files, so later stages never
care where the data came from. Prompts are plain strings or, with `prompt_format: chat`, conversations
(lists of {role, content}) that stay structured all the way to TRL.

Row checks live in `dataset_rows` (re-exported here: `COLUMNS`, `INVALID_ROWS`, `split_shared_prompt`).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from .atomic import write_parquet
from .dataset_rows import COLUMNS, INVALID_ROWS, prepare_splits, split_shared_prompt, summarize_counts
from .tasks import addition, arithmetic, get_task

__all__ = ["COLUMNS", "INVALID_ROWS", "SPLITS", "build_dataset", "check_parquet_rows", "load_hub", "load_parquet",
           "split_shared_prompt", "synthetic_addition", "synthetic_arithmetic", "write_dataset"]

SPLITS = ("train", "test")


def synthetic_addition(digits: int, n_train: int, n_test: int, seed: int) -> dict[str, pd.DataFrame]:
    """The offline default: addition problems, the right sum as `chosen`, a plausible mistake as `rejected`."""
    splits = addition.split_problems(digits, n_train, n_test, seed)
    return {
        name: pd.DataFrame(
            [{"prompt": p.prompt, "answer": p.answer, "chosen": p.answer, "rejected": p.wrong_answer} for p in problems],
            columns=COLUMNS,
        )
        for name, problems in zip(SPLITS, splits)
    }


def synthetic_arithmetic(spec: dict[str, Any], name: str | None = None) -> dict[str, pd.DataFrame]:
    """Offline arithmetic in GSM8K's format (`tasks.arithmetic`): a `digits`-digit and a `second_digits`-digit
    number under `operations`, checked and formatted as any dataset is (`prompt_format: chat` makes each
    question a user message)."""
    digits = spec["digits"]
    train, test = arithmetic.arithmetic_splits(digits, spec.get("second_digits", digits),
                                               tuple(spec.get("operations", arithmetic.OPERATIONS)),
                                               spec["n_train"], spec["n_test"], spec.get("seed", 0))
    frames = {"train": pd.DataFrame(train), "test": pd.DataFrame(test)}
    where = {split: f"datasets.{name}" if name else "synthetic arithmetic" for split in SPLITS}
    out, _, _ = prepare_splits(frames, where=where, **_settings({**spec, "task": "gsm8k"}, name, "generator settings"))
    return out


def _select(df: pd.DataFrame, columns: dict[str, str], origin: str, task: str) -> pd.DataFrame:
    """Rename source columns to ours and keep those we know; refuse a source without the task's columns."""
    shadowed = [c for c in df.columns if c in columns and columns[c] != c and c not in columns.values()]
    renamed = df.drop(columns=shadowed).rename(columns={src: ours for ours, src in columns.items()})
    needed = get_task(task).required_columns
    missing = [c for c in needed if c not in renamed.columns]
    if missing:
        raise ValueError(f"{origin}: task {task!r} needs column(s) {missing}; the source has {list(df.columns)}. "
                         f"Map them with `columns: {{{', '.join(f'{c}: <name>' for c in missing)}}}` in the dataset config")
    return renamed[[c for c in COLUMNS if c in renamed.columns]].reset_index(drop=True)


def _report(where: dict[str, str], counts: dict[str, Counter], note: str | None, sizes: dict[str, int]) -> None:
    """The dataset job's log: a line per split that lost rows (`invalid_rows: drop`), and the note."""
    for split, count in counts.items():
        if count:
            print(f"{where[split]}: dropped {sum(count.values())} of {sizes[split]} rows ({summarize_counts(count)})")
    if note:
        print(note)


def _settings(spec: dict[str, Any], name: str | None, noun: str) -> dict[str, Any]:
    setting = f"datasets.{name}.invalid_rows" if name else "invalid_rows"
    return {"task": spec["task"], "prompt_format": spec.get("prompt_format", "plain"),
            "system_prompt": spec.get("system_prompt"), "invalid_rows": spec.get("invalid_rows", "error"),
            "sources": {ours: theirs for ours, theirs in spec.get("columns", {}).items()},
            "setting": setting, "fix": f"fix the {noun}"}


def _hub_splits(spec: dict[str, Any]) -> dict[str, str]:
    return spec.get("splits", {"train": "train", "test": "test"})


def load_hub(spec: dict[str, Any], name: str | None = None) -> dict[str, pd.DataFrame]:
    """Load a hub dataset id (or a local dataset folder) with `datasets.load_dataset`, then check its rows."""
    from datasets import load_dataset

    path, splits = spec["path"], _hub_splits(spec)
    key = f"datasets.{name}" if name else path
    where = {ours: f"{key}.splits.{ours} ({path} split {theirs!r})" if name else f"{path} [{theirs}]"
             for ours, theirs in splits.items()}
    frames = {}
    for ours, theirs in splits.items():
        try:
            ds = load_dataset(path, spec.get("name"), split=theirs, revision=spec.get("revision"),
                              cache_dir=spec.get("cache_dir"))
        except Exception as err:
            from .hub_checkpoints import hub_unavailable

            missing = hub_unavailable(err, "hub dataset", path, f"datasets.{name}.path" if name else "path",
                                      spec.get("revision"), spec.get("cache_dir"), dataset=True,
                                      dataset_config=spec.get("name"))
            if missing is None:
                raise
            raise missing from err
        frames[ours] = _select(ds.to_pandas(), spec.get("columns", {}), where[ours], spec["task"])
    base = {re.split(r"[\[+]", theirs)[0].strip() for theirs in splits.values()}
    out, counts, note = prepare_splits(frames, where=where, same_source=len(base) == 1,
                                        **_settings(spec, name, "dataset"))
    _report(where, counts, note, {s: len(f) for s, f in frames.items()})
    return out


def _parquet_where(name: str | None, split: str, file: str) -> str:
    return f"datasets.{name}.files.{split} ({file})" if name else file


def load_parquet(spec: dict[str, Any], name: str | None = None, read_columns: list[str] | None = None,
                 report: bool = True) -> dict[str, pd.DataFrame]:
    """Read, check and format local Parquet splits (`read_columns`: only these source columns)."""
    files = spec["files"]
    where = {split: _parquet_where(name, split, file) for split, file in files.items()}
    frames = {}
    for split, file in files.items():
        if not Path(file).is_file():
            raise FileNotFoundError(f"dataset file {file} (split {split}) does not exist; fix `files.{split}` in the config")
        if read_columns is None:
            df = pd.read_parquet(file)
        else:
            import pyarrow.parquet as pq

            present = set(pq.read_schema(file).names)
            df = pq.read_table(file, columns=[c for c in read_columns if c in present]).to_pandas()
        frames[split] = _select(df, spec.get("columns", {}), where[split], spec["task"])
    same_source = len({Path(f).resolve() for f in files.values()}) == 1
    out, counts, note = prepare_splits(frames, where=where, same_source=same_source, **_settings(spec, name, "file"))
    if report:
        _report(where, counts, note, {s: len(f) for s, f in frames.items()})
    return out


def check_parquet_rows(name: str, spec: dict[str, Any]) -> None:
    """The row checks of a Parquet dataset, when the Snakefile is parsed: reads only the checked columns.

    With `invalid_rows: drop` it only refuses a split that would end with no rows.
    """
    columns = spec.get("columns", {})
    checked = (*get_task(spec["task"]).required_columns, "prompt")
    load_parquet(spec, name, read_columns=list(dict.fromkeys(columns.get(c, c) for c in checked)), report=False)


def build_dataset(spec: dict[str, Any], name: str | None = None) -> dict[str, pd.DataFrame]:
    """Dispatch on `spec['source']` (a validated `datasets.<name>` config entry; `name` for messages)."""
    source = spec["source"]
    if source == "synthetic" and spec.get("task", "addition") == "gsm8k":
        return synthetic_arithmetic(spec, name)
    if source == "synthetic":
        return synthetic_addition(spec["digits"], spec["n_train"], spec["n_test"], spec.get("seed", 0))
    if source == "hub":
        return load_hub(spec, name)
    if source == "parquet":
        return load_parquet(spec, name)
    raise ValueError(f"unknown dataset source {source!r}; use synthetic, hub or parquet")


def write_dataset(splits: dict[str, pd.DataFrame], out: dict[str, str | os.PathLike]) -> None:
    for split in SPLITS:
        if split not in splits or splits[split].empty:
            raise ValueError(f"dataset has no rows for split {split!r}")
        write_parquet(splits[split], out[split])
