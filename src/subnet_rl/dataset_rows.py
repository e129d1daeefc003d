"""Row checks of a dataset source: which rows a task can use, and each refused row's message.

A source row is refused (`invalid_rows: error`, the default) or dropped (`invalid_rows: drop`) when a
column the task uses is null, empty (after strip) or neither text nor a conversation (a number is
accepted as a reference answer: GSM8K-like files often hold ints), when the reference answer yields
no gold answer, when a split repeats a prompt (preference data: a whole prompt/chosen/rejected pair,
since several pairs per prompt are normal there), or when a train prompt is also a test prompt.
Parquet datasets are checked when the Snakefile is parsed (`data.check_parquet_rows`), hub datasets when
the dataset job loads them; both run `prepare_splits`, so the messages are the same. Kept apart from
`data` (which loads, builds and writes datasets) so the checks read as one piece.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from .prompting import as_messages, assistant_reply, is_conversation, user_prompt
from .tasks import completion_text, get_task

COLUMNS = ["prompt", "answer", "chosen", "rejected"]
INVALID_ROWS = ("error", "drop")


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
            raise _plain_conversations(origin, column)
        return as_messages(value)
    return wrap(str(value)) if chat else str(value)


def _plain_conversations(origin: str, column: str) -> ValueError:
    return ValueError(f"{origin}: column {column!r} holds conversations; set `prompt_format: chat` "
                      "for this dataset (conversations need the tokenizer's chat template)")


def _is_null(value: Any) -> bool:
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating, Decimal)) and not isinstance(value, (bool, np.bool_))


def _number_text(value: Any) -> str:
    """A number as answer text; integral floats without ".0" (an int column with nulls reads back as floats)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _valid_messages(value: Any) -> bool:
    return all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
               for m in value)


def _text_problem(value: Any, column: str, chat: bool, where: str, source: str,
                  number: bool = False, assistant: bool = False) -> str | None:
    """None when `value` is a usable prompt/answer, else what is wrong with it: null, empty or non-text.

    A conversation with `prompt_format: plain` is a setting error (every row has it), raised at once.
    """
    if _is_null(value):
        return "null"
    if isinstance(value, str):
        return None if value.strip() else "empty"
    if isinstance(value, (list, tuple, np.ndarray)) and len(value) == 0:
        return "empty"
    if is_conversation(value):
        if not chat:
            raise _plain_conversations(where, source)
        if not _valid_messages(value):
            return "non-text"
        text = completion_text(as_messages(value)) if assistant else "".join(m["content"] for m in value)
        return None if text.strip() else "empty"
    if number and _is_number(value):
        return None if np.isfinite(float(value)) else "non-text"
    return "non-text"


_ARTICLE = {"null": "a null", "empty": "an empty", "non-text": "a non-text"}


def _problem_text(i: int, kind: str, column: str, source: str, value: Any, chat: bool) -> str:
    label = f"{column!r}" + (" answer" if column in ("chosen", "rejected") else "")
    if source != column:
        label += f" (column {source!r})"
    text = f"row {i} has {_ARTICLE[kind]} {label}"
    if kind == "non-text":
        forms = ["text"] + (["a number"] if column == "answer" else []) + (
            ["a conversation (a list of {role, content} messages with text content)"] if chat else [])
        text += f": {type(value).__name__} {_short(value)}; it must be {' or '.join(forms)}"
    return text


def _short(value: Any) -> str:
    text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def _key(value: Any) -> Any:
    """A hashable form of a prompt or answer (conversations as tuples of (role, content))."""
    if isinstance(value, list):
        return tuple((m["role"], m["content"]) for m in value)
    return value


def _prepare_row(raw: dict, i: int, task, chat: bool, system_prompt: str | None, where: str,
                 sources: dict[str, str]) -> tuple[dict | None, tuple[str, str] | None]:
    """(the row in our format, None), or (None, (kind, message)) for a row to refuse or drop."""
    row = dict(raw)

    def check(column: str, value: Any, **kwargs: Any) -> tuple[str, str] | None:
        kind = _text_problem(value, column, chat, where, sources[column], **kwargs)
        if kind is None:
            return None
        return f"{kind} {column!r}", _problem_text(i, kind, column, sources[column], value, chat)

    if task.scores:
        problem = check("prompt", row["prompt"]) or check("answer", row["answer"], number=True, assistant=True)
        if problem:
            return None, problem
        answer = row["answer"]
        row["answer"] = (completion_text(as_messages(answer)) if is_conversation(answer)
                         else _number_text(answer) if _is_number(answer) else answer)
        try:
            task.gold(row["answer"])
        except ValueError as err:
            return None, ("answer without a gold answer", f"row {i}: {err}")
    else:  # preference: chosen/rejected, and a prompt column or their shared opening turns
        problem = check("chosen", row["chosen"], assistant=True) or check("rejected", row["rejected"], assistant=True)
        if problem:
            return None, problem
        if is_conversation(row["chosen"]) and is_conversation(row["rejected"]):
            prompt, row["chosen"], row["rejected"] = split_shared_prompt(row["chosen"], row["rejected"])
            if prompt:
                row["prompt"] = prompt
        for column in ("chosen", "rejected"):
            if not _answer_text(row[column]).strip():  # all its text was in the shared opening turns
                return None, (f"empty {column!r}", f"row {i} has an empty {column!r} answer"
                              f"{_column_note(sources, column)} once the shared opening turns are the prompt")
        if "prompt" not in row:
            return None, ("no prompt", f"row {i} has no prompt: no prompt column, and chosen/rejected do not "
                                       "share opening turns; map the prompt with `columns: {prompt: <name>}`")
        problem = check("prompt", row["prompt"])
        if problem:
            return None, problem
    row["prompt"] = _as_format(row["prompt"], chat, lambda t: user_prompt(t, system_prompt), where, sources["prompt"])
    if chat and system_prompt and row["prompt"][0]["role"] != "system":
        row["prompt"] = [{"role": "system", "content": system_prompt}, *row["prompt"]]
    for column in ("chosen", "rejected"):
        if column in row:
            row[column] = _as_format(row[column], chat, assistant_reply, where, sources[column])
    if "answer" in row and not task.scores:
        row["answer"] = str(row["answer"])  # kept as it was; the preference task does not use it
    return row, None


def summarize_counts(counts: Counter) -> str:
    """Refused or dropped rows by kind, most frequent first ("3 null 'answer', 1 duplicate prompt")."""
    return ", ".join(f"{n} {kind}" for kind, n in counts.most_common())


def prepare_splits(frames: dict[str, pd.DataFrame], *, task: str, prompt_format: str = "plain",
                    system_prompt: str | None = None, where: dict[str, str], sources: dict[str, str],
                    setting: str, fix: str, invalid_rows: str = "error", same_source: bool = False,
                    ) -> tuple[dict[str, pd.DataFrame], dict[str, Counter], str | None]:
    """Check and format every split's rows: refuse (error) or drop (drop) invalid ones.

    Returns the formatted splits, the dropped rows' counts per kind and split, and a note when the test
    split is deliberately not held out.

    `frames` hold our column names; `where[split]` names the split in messages (its config key),
    `sources` our column -> the source's, `setting` the `invalid_rows` key, `fix` what else to do.
    `same_source`: both splits come from one file or hub split (`test: train[:256]`), so a test split
    inside train is deliberate rather than leakage.
    """
    if invalid_rows not in INVALID_ROWS:
        raise ValueError(f"{setting}: {invalid_rows!r}; use one of {list(INVALID_ROWS)}")
    scorer, chat, drop = get_task(task), prompt_format == "chat", invalid_rows == "drop"
    sources = {c: sources.get(c, c) for c in COLUMNS}
    hint = f"{fix}, or set `{setting}: drop` to drop such rows (counted in the dataset job's log)"
    what, unit = ("prompt", "prompt") if scorer.scores else ("prompt, chosen and rejected answers", "pair")
    out, counts, keys = {}, {}, {}
    for split, frame in frames.items():
        if frame.empty:
            raise ValueError(f"{where[split]}: has no rows; a split needs at least one ({fix})")
        rows, problems, counts[split] = [], [], Counter()
        for i, raw in enumerate(frame.to_dict("records")):
            row, problem = _prepare_row(raw, i, scorer, chat, system_prompt, where[split], sources)
            if problem:
                problems.append(problem)
            else:
                rows.append((i, row))
        if problems and not drop:
            kinds = summarize_counts(Counter(k for k, _ in problems))
            more = f" ({len(problems)} rows of this split have problems: {kinds})"
            raise ValueError(f"{where[split]}: {problems[0][1]}; {hint}{more if len(problems) > 1 else ''}")
        counts[split].update(kind for kind, _ in problems)
        # duplicates: a repeated prompt (a repeated pair for preference data); the first one is kept
        seen: dict[Any, int] = {}
        kept = []
        for i, row in rows:
            key = _row_key(row, scorer)
            if key in seen:
                if not drop:
                    column = _column_note(sources, "prompt") if scorer.scores else ""
                    raise ValueError(f"{where[split]}: row {i} repeats the {what} of row {seen[key]}{column}; "
                                     f"{fix}, or set `{setting}: drop` to keep only the first (counted in the "
                                     "dataset job's log)")
                counts[split][f"duplicate {unit}"] += 1
                continue
            seen[key] = i
            kept.append((i, row))
        out[split], keys[split] = kept, seen
    note = None
    if "train" in out and "test" in out:
        train, test = keys["train"], keys["test"]
        shared = train.keys() & test.keys()
        # the same data twice, or (one file / one hub split) a test split taken from train: deliberate
        deliberate = shared == test.keys() and (same_source or shared == train.keys())
        if shared and deliberate:
            note = (f"{where['test']}: every test {unit} is also in train (the same data, or a part of it): "
                    "the test split is not held out")
        elif shared:
            first = min(shared, key=train.__getitem__)
            if not drop:
                raise ValueError(f"{where['train']}: row {train[first]} has the same {what} as row {test[first]} of "
                                 f"{where['test']} (test leakage; {len(shared)} shared); {fix}, or set "
                                 f"`{setting}: drop` to drop them from train (counted in the dataset job's log)")
            out["train"] = [(i, row) for i, row in out["train"] if _row_key(row, scorer) not in shared]
            counts["train"][f"{unit} also in test"] += len(shared)
    frames_out = {}
    for split, kept in out.items():
        if not kept:
            raise ValueError(f"{where[split]}: all {len(frames[split])} rows are invalid "
                             f"({summarize_counts(counts[split])}); {fix}")
        columns = [c for c in COLUMNS if c in kept[0][1]]
        frames_out[split] = pd.DataFrame([row for _, row in kept], columns=columns)
    return frames_out, counts, note


def _row_key(row: dict, scorer) -> Any:
    return _key(row["prompt"]) if scorer.scores else tuple(_key(row[c]) for c in ("prompt", "chosen", "rejected"))


def _column_note(sources: dict[str, str], column: str) -> str:
    return f" (column {sources[column]!r})" if sources[column] != column else ""


def _answer_text(value: Any) -> str:
    """The assistant text of an answer (a string or a conversation); "" for a missing value (None, NaN)."""
    return completion_text(value) if isinstance(value, str) or is_conversation(value) else ""
