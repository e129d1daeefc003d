"""Token lengths checked before training, so truncation never removes an answer without a word.

TRL truncates SFT and DPO sequences to `max_length` keeping the start: an example whose prompt and
completion exceed it loses the end of its completion, where a worked solution states its final answer
(or the whole completion, when the prompt alone fills it). GRPO never truncates prompts; a prompt over
`max_prompt_length` is refused here so memory stays what the config says. Such rows fail the run,
naming the dataset, the row and the key to raise, or are dropped and counted with `drop_overlong`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .prompting import as_completion, as_messages, is_conversation, render


@dataclass(frozen=True)
class Overlong:
    row: int
    tokens: int
    limit: int
    key: str
    what: str


def _count(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _full_length(tokenizer, prompt, completion) -> int:
    """Tokens of prompt + completion as the trainer builds them (chat template, or text + EOS)."""
    if is_conversation(prompt):
        ids = tokenizer.apply_chat_template(as_messages(prompt) + as_messages(completion), tokenize=True)
        return len(ids["input_ids"] if hasattr(ids, "keys") else ids)  # a BatchEncoding in transformers 5
    return _count(tokenizer, str(prompt) + str(completion)) + 1  # TRL appends EOS


#: completion columns checked per kind of training data (an algorithm's `data`); prompts-only data
#: (online RL) has its prompts checked alone.
COMPLETIONS = {"answers": ["answer"], "pairs": ["chosen", "rejected"], "prompts": []}


def find_overlong(df: pd.DataFrame, tokenizer, data: str, max_prompt_length: int,
                  max_length: int) -> list[Overlong]:
    """Rows of a training frame (`data`: prompts, prompt plus answer, or chosen/rejected pairs) that would be
    truncated."""
    found = []
    completions = COMPLETIONS[data]
    for i, row in enumerate(df.to_dict("records")):
        prompt_tokens = _count(tokenizer, render(tokenizer, row["prompt"]))
        if prompt_tokens > max_prompt_length:
            found.append(Overlong(i, prompt_tokens, max_prompt_length, "max_prompt_length", "prompt"))
            continue
        for column in completions:
            completion = row[column]
            if not is_conversation(completion):
                completion = as_completion(row["prompt"], str(completion))
            total = _full_length(tokenizer, row["prompt"], completion)
            if total > max_length:
                found.append(Overlong(i, total, max_length, "max_length", f"prompt + {column}"))
                break
    return found


def enforce_lengths(df: pd.DataFrame, tokenizer, data: str, max_prompt_length: int, max_length: int,
                    drop: bool, dataset: str, run: str) -> tuple[pd.DataFrame, int]:
    """The frame without overlong rows (and how many were dropped), or a ValueError naming the first one."""
    overlong = find_overlong(df, tokenizer, data, max_prompt_length, max_length)
    if not overlong:
        return df, 0
    if not drop:
        first = overlong[0]
        raise ValueError(
            f"dataset {dataset!r}, training row {first.row}: {first.what} is {first.tokens} tokens, over "
            f"{first.key}={first.limit} ({len(overlong)} of {len(df)} rows are); truncation would cut the "
            f"completion's answer away. Raise `runs.{run}.{first.key}` (or `training.{first.key}`), or set "
            f"`drop_overlong: true` to drop such rows")
    keep = sorted(set(range(len(df))) - {o.row for o in overlong})
    if not keep:
        raise ValueError(f"dataset {dataset!r}: every one of {len(df)} rows is over the length limits of run "
                         f"{run!r}; raise max_length / max_prompt_length")
    return df.iloc[keep].reset_index(drop=True), len(overlong)
