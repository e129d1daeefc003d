"""Token lengths of a run's training data: measured before training, checked against the run's limits, and
the `auto` limits set from them, so truncation never removes an answer without a word.

TRL truncates SFT and DPO sequences to `max_length` keeping the start: an example whose prompt and
completion exceed it loses the end of its completion, where a worked solution states its final answer
(or the whole completion, when the prompt alone fills it). GRPO never truncates prompts; a prompt over
`max_prompt_length` is refused here so memory stays what the config says. Such rows fail the run,
naming the dataset, the row and the key to raise, or are dropped and counted with `drop_overlong`.

A limit set to `auto` (the default) is the longest of the data the run trains on, counted as TRL builds
its sequences: `max_prompt_length` the longest prompt (chat template and generation prompt included);
`max_length` the longest prompt + completion (+ EOS) of SFT answers and of preference pairs (chosen and
rejected), and for prompt-only data (online RL) the longest prompt + `max_new_tokens`, the longest
sequence the trainer scores (Online DPO truncates to it; GRPO and RLOO do not read it). Each trainer's
own way of building sequences counts (`EOS_AFTER_CHAT`, `MISMATCHED_PAIRS`), so that TRL prepares the same
rows with `auto` as without any limit. Explicit limits are applied first (rows over them fail or are
dropped); `auto` ones are measured on the rows kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from .algorithms import get_algorithm
from .prompting import as_completion, as_messages, is_conversation, require_chat_template
from .settings import AUTO_LENGTH, LENGTH_MINIMUM, Sampling

if TYPE_CHECKING:
    from .config import RunSpec


@dataclass(frozen=True)
class Overlong:
    row: int
    tokens: int
    limit: int
    key: str
    what: str


@dataclass(frozen=True)
class RowLengths:
    """One training row in tokens: its prompt, and prompt + each completion column as the trainer builds it."""

    prompt: int
    full: tuple[int, ...]  # one per completion column (none for prompt-only data)


def _ids(encoded: Any) -> list[int]:
    return encoded["input_ids"] if hasattr(encoded, "keys") else encoded  # a BatchEncoding in transformers 5


def _prompt_length(tokenizer, prompt) -> int:
    """Tokens of a prompt as TRL's trainers tokenize it: the chat template with a generation prompt, or the
    tokenizer's own call (special tokens, e.g. a BOS, included) on plain text."""
    if is_conversation(prompt):
        require_chat_template(tokenizer)
        return len(_ids(tokenizer.apply_chat_template(as_messages(prompt), add_generation_prompt=True,
                                                      tokenize=True)))
    return len(tokenizer(str(prompt))["input_ids"])


def _full_length(tokenizer, prompt, completion, eos_after_chat: bool = False) -> int:
    """Tokens of prompt + completion as the trainer builds them (chat template, or text + EOS; with
    `eos_after_chat`, an EOS after a chat answer whose template does not end with one)."""
    if is_conversation(prompt):
        ids = _ids(tokenizer.apply_chat_template(as_messages(prompt) + as_messages(completion), tokenize=True))
        return len(ids) + int(eos_after_chat and (not ids or ids[-1] != tokenizer.eos_token_id))
    text = str(prompt) + str(completion)
    eos = tokenizer.eos_token
    return len(tokenizer(text if text.endswith(eos) else text + eos)["input_ids"])  # TRL appends EOS


#: completion columns checked per kind of training data (an algorithm's `data`); prompts-only data
#: (online RL) has its prompts checked alone.
COMPLETIONS = {"answers": ["answer"], "pairs": ["chosen", "rejected"], "prompts": []}
#: trainers whose sequences are more than prompt + completion as above. ORPO and SimPO (TRL's CPO trainer)
#: tokenize in TRL's older way and append an EOS to an answer that does not end with one, a chat template's
#: turn included (trl/experimental/orpo and cpo, `add_eos_token_if_needed`). KTO also scores each prompt with
#: another row's completion for its KL estimate (`KL_completion_ids`): up to the longest prompt + the longest
#: completion, which `auto` covers so that no KL sequence is cut either.
EOS_AFTER_CHAT = frozenset({"orpo", "simpo"})
MISMATCHED_PAIRS = frozenset({"kto"})


def measure(df: pd.DataFrame, tokenizer, data: str, algorithm: str = "") -> list[RowLengths]:
    """Each row of a training frame (`data`: prompts, prompt plus answer, or chosen/rejected pairs) in tokens,
    as `algorithm`'s trainer builds it."""
    measured = []
    for row in df.to_dict("records"):
        prompt = _prompt_length(tokenizer, row["prompt"])
        full = []
        for column in COMPLETIONS[data]:
            completion = row[column]
            if not is_conversation(completion):
                completion = as_completion(row["prompt"], str(completion))
            full.append(_full_length(tokenizer, row["prompt"], completion, algorithm in EOS_AFTER_CHAT))
        measured.append(RowLengths(prompt, tuple(full)))
    return measured


def _limit(value: int | str) -> float:
    return float("inf") if value == AUTO_LENGTH else value


def overlong(measured: list[RowLengths], data: str, max_prompt_length: int | str,
             max_length: int | str) -> list[Overlong]:
    """The rows over an explicit limit (an `auto` limit holds every row), the first limit each breaks."""
    found = []
    for i, row in enumerate(measured):
        if row.prompt > _limit(max_prompt_length):
            found.append(Overlong(i, row.prompt, max_prompt_length, "max_prompt_length", "prompt"))
            continue
        for column, total in zip(COMPLETIONS[data], row.full, strict=True):
            if total > _limit(max_length):
                found.append(Overlong(i, total, max_length, "max_length", f"prompt + {column}"))
                break
    return found


def find_overlong(df: pd.DataFrame, tokenizer, data: str, max_prompt_length: int | str,
                  max_length: int | str) -> list[Overlong]:
    """Rows of a training frame (`data`: prompts, prompt plus answer, or chosen/rejected pairs) that would be
    truncated."""
    return overlong(measure(df, tokenizer, data), data, max_prompt_length, max_length)


@dataclass(frozen=True)
class Lengths:
    """A run's lengths as configured (a number, or `auto`), what it trains with, and the data's longest."""

    settings: dict[str, int | str]
    values: dict[str, int]
    longest: dict[str, int]

    def record(self) -> dict[str, dict[str, int | str]]:
        """For training.json: {key: {setting, value, longest}}."""
        return {key: {"setting": self.settings[key], "value": self.values[key], "longest": self.longest[key]}
                for key in LENGTH_MINIMUM}

    def describe(self, rows: int, dataset: str, data: str, algorithm: str = "") -> str:
        """The job log's line: what each length is and where it came from."""
        what = {"max_prompt_length": "the longest prompt",
                "max_length": "the longest prompt + max_new_tokens" if data == "prompts"
                else "the longest prompt + the longest completion (KL pairs)" if algorithm in MISMATCHED_PAIRS
                else "the longest prompt + completion"}
        parts = [f"{key} {self.values[key]} ("
                 + (f"auto: {what[key]}" if self.settings[key] == AUTO_LENGTH
                    else f"as set; {what[key]} is {self.longest[key]}") + ")" for key in LENGTH_MINIMUM]
        return f"lengths: {', '.join(parts)}, in tokens over {rows} training rows of {dataset!r}"


def resolve(measured: list[RowLengths], data: str, max_prompt_length: int | str, max_length: int | str,
            new_tokens: int = 0, algorithm: str = "") -> Lengths:
    """The lengths a run trains with: each explicit setting as it is, each `auto` one the longest of
    `measured` (prompt-only data: the longest prompt + `new_tokens`, the completions' length; KTO: at least
    the longest prompt + the longest completion, its KL pairs)."""
    if not measured:
        raise ValueError("no training rows to measure the lengths of")
    prompt = max(row.prompt for row in measured)
    full = prompt + new_tokens if data == "prompts" else max(max(row.full) for row in measured)
    if data != "prompts" and algorithm in MISMATCHED_PAIRS:
        full = max(full, prompt + max(total - row.prompt for row in measured for total in row.full))
    longest = {"max_prompt_length": prompt, "max_length": full}
    settings = {"max_prompt_length": max_prompt_length, "max_length": max_length}
    values = {key: max(longest[key], least) if settings[key] == AUTO_LENGTH else settings[key]
              for key, least in LENGTH_MINIMUM.items()}
    return Lengths(settings, values, longest)


def fit_lengths(df: pd.DataFrame, tokenizer, data: str, max_prompt_length: int | str, max_length: int | str,
                drop: bool, dataset: str, run: str, new_tokens: int = 0,
                algorithm: str = "") -> tuple[pd.DataFrame, int, Lengths]:
    """The frame without overlong rows, how many were dropped, and the lengths to train with (`resolve`);
    a ValueError naming the first overlong row unless `drop`. `algorithm`: whose trainer builds the sequences."""
    measured = measure(df, tokenizer, data, algorithm)
    over = overlong(measured, data, max_prompt_length, max_length)
    if not over:
        return df, 0, resolve(measured, data, max_prompt_length, max_length, new_tokens, algorithm)
    if not drop:
        first = over[0]
        raise ValueError(
            f"dataset {dataset!r}, training row {first.row}: {first.what} is {first.tokens} tokens, over "
            f"{first.key}={first.limit} ({len(over)} of {len(df)} rows are); truncation would cut the "
            f"completion's answer away. Raise `runs.{run}.{first.key}` (or `training.{first.key}`), set it to "
            f"{AUTO_LENGTH!r} (the data's longest), or set `drop_overlong: true` to drop such rows")
    keep = sorted(set(range(len(df))) - {o.row for o in over})
    if not keep:
        raise ValueError(f"dataset {dataset!r}: every one of {len(df)} rows is over the length limits of run "
                         f"{run!r}; raise max_length / max_prompt_length")
    kept = [measured[i] for i in keep]
    return (df.iloc[keep].reset_index(drop=True), len(over),
            resolve(kept, data, max_prompt_length, max_length, new_tokens, algorithm))


def enforce_lengths(df: pd.DataFrame, tokenizer, data: str, max_prompt_length: int | str, max_length: int | str,
                    drop: bool, dataset: str, run: str) -> tuple[pd.DataFrame, int]:
    """The frame without overlong rows (and how many were dropped), or a ValueError naming the first one."""
    kept, dropped, _ = fit_lengths(df, tokenizer, data, max_prompt_length, max_length, drop, dataset, run)
    return kept, dropped


def has_auto_lengths(spec: RunSpec) -> bool:
    return AUTO_LENGTH in (spec.max_prompt_length, spec.max_length)


def fit_run(spec: RunSpec, tokenizer, df: pd.DataFrame) -> tuple[pd.DataFrame, int, Lengths]:
    """`fit_lengths` for a run: its algorithm's kind of data, its limits, and (online algorithms) the
    completions' `max_new_tokens`."""
    new_tokens = spec.max_new_tokens if isinstance(spec.settings, Sampling) else 0
    return fit_lengths(df, tokenizer, get_algorithm(spec.algorithm).data, spec.max_prompt_length, spec.max_length,
                       spec.drop_overlong, spec.dataset, spec.name, new_tokens, spec.algorithm)


def with_lengths(spec: RunSpec, lengths: Lengths) -> RunSpec:
    """The run with the lengths it trains with (what its TRL config and memory plan get)."""
    return spec.replaced(**lengths.values)


def measured_spec(spec: RunSpec, start, data_file) -> RunSpec:
    """`spec` with its `auto` lengths set from `data_file` as the `start` checkpoint's tokenizer counts it (the
    launcher plans a job with it before any training process starts); the same checks as training, so an
    overlong row fails here. A spec without `auto` lengths is returned as it is."""
    if not has_auto_lengths(spec):
        return spec
    from .models import load_tokenizer

    _, _, lengths = fit_run(spec, load_tokenizer(start), pd.read_parquet(data_file))
    return with_lengths(spec, lengths)
