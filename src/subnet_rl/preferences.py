"""Preference pairs for offline algorithms, sampled on-policy from the start checkpoint.

On-policy pairs keep DPO in-distribution (the regime the paper links to sparse updates); a prompt is
kept only when its samples contain at least one correct and one wrong answer.
"""

from __future__ import annotations

import pandas as pd
import torch

from . import task
from .evaluate import generate


def on_policy_pairs(model, tokenizer, train: pd.DataFrame, samples: int, temperature: float,
                    max_new_tokens: int, seed: int) -> pd.DataFrame:
    """chosen = a correct sample, rejected = the lowest-reward sample of the same prompt."""
    torch.manual_seed(seed)
    completions = generate(model, tokenizer, list(train["prompt"]), max_new_tokens, samples=samples,
                           temperature=temperature)
    rows = []
    for prompt, answer, options in zip(train["prompt"], train["answer"], completions):
        options = [o.strip() for o in options]
        correct = [o for o in options if task.is_correct(o, answer)]
        wrong = [o for o in options if not task.is_correct(o, answer)]
        if correct and wrong:
            rejected = min(wrong, key=lambda o: task.reward(o, answer))
            rows.append({"prompt": prompt, "answer": answer, "chosen": correct[0], "rejected": rejected})
    if not rows:
        raise ValueError("no prompt had both a correct and a wrong sample: the start checkpoint is either "
                         "always right or always wrong; use a different warmup or source: dataset pairs")
    return pd.DataFrame(rows)
