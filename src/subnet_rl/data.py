"""Datasets as Parquet splits with explicit columns: prompt, answer, chosen, rejected (those a task uses).

Sources: the offline synthetic task (default), a hub dataset or local dataset folder through
`datasets.load_dataset`, or local Parquet files. All end in the same two files, so later stages never
care where the data came from. Prompts are plain strings or, with `prompt_format: chat`, conversations
(lists of {role, content}) that stay structured all the way to TRL.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from .atomic import write_parquet
from .prompting import as_messages, assistant_reply, is_conversation, user_prompt
from .tasks import addition, completion_text, get_task

COLUMNS = ["prompt", "answer", "chosen", "rejected"]
SPLITS = ("train", "test")


def synthetic_addition(digits: int, n_train: int, n_test: int, seed: int) -> dict[str, pd.DataFrame]:
    splits = addition.split_problems(digits, n_train, n_test, seed)
    return {
        name: pd.DataFrame(
            [{"prompt": p.prompt, "answer": p.answer, "chosen": p.answer, "rejected": p.wrong_answer} for p in problems],
            columns=COLUMNS,
        )
        for name, problems in zip(SPLITS, splits)
    }


def split_shared_prompt(chosen: Any, rejected: Any) -> tuple[list, list, list]:
    """(prompt, chosen, rejected) from two conversations that share their opening turns.

    Preference sets such as Tulu 3's store whole conversations under chosen/rejected (TRL's "implicit
    prompt" format); the shared opening is the prompt, the rest each answer.
    """
    chosen, rejected = as_messages(chosen), as_messages(rejected)
    shared = 0
    while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
        shared += 1
    return chosen[:shared], chosen[shared:], rejected[shared:]


def _as_format(value: Any, chat: bool, wrap, origin: str, column: str) -> Any:
    if is_conversation(value):
        if not chat:
            raise ValueError(f"{origin}: column {column!r} holds conversations; set `prompt_format: chat` "
                             "for this dataset (conversations need the tokenizer's chat template)")
        return as_messages(value)
    return wrap(str(value)) if chat else str(value)


def _standardise(df: pd.DataFrame, columns: dict[str, str], origin: str, task: str = "addition",
                 prompt_format: str = "plain", system_prompt: str | None = None) -> pd.DataFrame:
    """Rename source columns to ours, keep those the task uses, and put prompts in the chosen format."""
    renamed = df.rename(columns={src: ours for ours, src in columns.items()})
    needed = get_task(task).required_columns
    missing = [c for c in needed if c not in renamed.columns]
    if missing:
        raise ValueError(f"{origin}: task {task!r} needs column(s) {missing}; the source has {list(df.columns)}. "
                         f"Map them with `columns: {{{', '.join(f'{c}: <name>' for c in missing)}}}` in the dataset config")
    out = renamed[[c for c in COLUMNS if c in renamed.columns]].reset_index(drop=True)
    chat = prompt_format == "chat"
    if task == "preference":
        out = _preference_rows(out, origin)
    rows = out.to_dict("records")
    for row in rows:
        row["prompt"] = _as_format(row["prompt"], chat, lambda t: user_prompt(t, system_prompt), origin, "prompt")
        if chat and system_prompt and row["prompt"][0]["role"] != "system":
            row["prompt"] = [{"role": "system", "content": system_prompt}, *row["prompt"]]
        for column in ("chosen", "rejected"):
            if column in row:
                row[column] = _as_format(row[column], chat, assistant_reply, origin, column)
        if "answer" in row:
            row["answer"] = str(row["answer"])
    _check_gold_answers(rows, task, origin)
    return pd.DataFrame(rows, columns=list(out.columns))


def _check_gold_answers(rows: list[dict], task: str, origin: str) -> None:
    """Every reference answer must yield a gold answer now, not as a zero reward hundreds of steps later."""
    scorer = get_task(task)
    if not scorer.scores:
        return
    for i, row in enumerate(rows):
        try:
            scorer.gold(row["answer"])
        except ValueError as err:
            raise ValueError(f"{origin}: row {i}: {err}") from None


def _preference_rows(df: pd.DataFrame, origin: str) -> pd.DataFrame:
    """Split implicit prompts out of chosen/rejected conversations; refuse empty answers and missing prompts."""
    rows = []
    for i, row in enumerate(df.to_dict("records")):
        if is_conversation(row["chosen"]) and is_conversation(row["rejected"]):
            prompt, row["chosen"], row["rejected"] = split_shared_prompt(row["chosen"], row["rejected"])
            if prompt:
                row["prompt"] = prompt
        for column in ("chosen", "rejected"):
            if not _answer_text(row[column]).strip():
                raise ValueError(f"{origin}: row {i} has an empty {column!r} answer; a preference pair needs both")
        if not isinstance(row.get("prompt"), str) and not is_conversation(row.get("prompt")):
            raise ValueError(f"{origin}: row {i} has no prompt: no prompt column, and chosen/rejected do not "
                             "share opening turns; map the prompt with `columns: {prompt: <name>}`")
        rows.append(row)
    return pd.DataFrame(rows)


def _answer_text(value: Any) -> str:
    """The assistant text of an answer (a string or a conversation); "" for a missing value (None, NaN)."""
    return completion_text(value) if isinstance(value, str) or is_conversation(value) else ""


def load_hub(path: str, columns: dict[str, str], splits: dict[str, str], name: str | None = None,
             revision: str | None = None, cache_dir: str | None = None, **formatting: Any) -> dict[str, pd.DataFrame]:
    """Load a hub dataset id (or a local dataset folder) with `datasets.load_dataset`."""
    from datasets import load_dataset

    out = {}
    for ours, theirs in splits.items():
        ds = load_dataset(path, name, split=theirs, revision=revision, cache_dir=cache_dir)
        out[ours] = _standardise(ds.to_pandas(), columns, f"{path} [{theirs}]", **formatting)
    return out


def load_parquet(files: dict[str, str], columns: dict[str, str], **formatting: Any) -> dict[str, pd.DataFrame]:
    out = {}
    for split, file in files.items():
        if not Path(file).is_file():
            raise FileNotFoundError(f"dataset file {file} (split {split}) does not exist; fix `files.{split}` in the config")
        out[split] = _standardise(pd.read_parquet(file), columns, file, **formatting)
    return out


def build_dataset(spec: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Dispatch on `spec['source']` (a validated `datasets.<name>` config entry)."""
    source = spec["source"]
    if source == "synthetic":
        return synthetic_addition(spec["digits"], spec["n_train"], spec["n_test"], spec["seed"])
    columns = spec.get("columns", {})
    formatting = {"task": spec["task"], "prompt_format": spec.get("prompt_format", "plain"),
                  "system_prompt": spec.get("system_prompt")}
    if source == "hub":
        return load_hub(spec["path"], columns, spec.get("splits", {"train": "train", "test": "test"}),
                        spec.get("name"), spec.get("revision"), spec.get("cache_dir"), **formatting)
    if source == "parquet":
        return load_parquet(spec["files"], columns, **formatting)
    raise ValueError(f"unknown dataset source {source!r}; use synthetic, hub or parquet")


def write_dataset(splits: dict[str, pd.DataFrame], out: dict[str, str | os.PathLike]) -> None:
    for split in SPLITS:
        if split not in splits or splits[split].empty:
            raise ValueError(f"dataset has no rows for split {split!r}")
        write_parquet(splits[split], out[split])
