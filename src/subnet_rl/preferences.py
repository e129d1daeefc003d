"""Preference pairs for offline algorithms, sampled on-policy from the start checkpoint.

On-policy pairs keep DPO in-distribution (the regime the paper links to sparse updates); a prompt is
kept only when its samples contain at least one correct and one wrong answer, as the dataset's task
judges them.
"""

from __future__ import annotations

import pandas as pd
import torch

from .evaluate import generate
from .prompting import as_completion
from .tasks import Task


def on_policy_pairs(model, tokenizer, train: pd.DataFrame, task: Task, reward: str, samples: int,
                    temperature: float, max_new_tokens: int, seed: int) -> pd.DataFrame:
    """chosen = a correct sample, rejected = the lowest-reward sample of the same prompt."""
    torch.manual_seed(seed)
    completions = generate(model, tokenizer, list(train["prompt"]), max_new_tokens, samples=samples,
                           temperature=temperature)
    rows = []
    for prompt, answer, options in zip(train["prompt"], train["answer"], completions, strict=True):
        options = [o.strip() for o in options]
        correct = [o for o in options if task.is_correct(o, answer)]
        wrong = [o for o in options if not task.is_correct(o, answer)]
        if correct and wrong:
            rejected = min(wrong, key=lambda o: task.reward(o, answer, reward))
            rows.append({"prompt": prompt, "answer": answer, "chosen": as_completion(prompt, correct[0]),
                         "rejected": as_completion(prompt, rejected)})
    if not rows:
        raise ValueError("no prompt had both a correct and a wrong sample: the start checkpoint is either "
                         "always right or always wrong; use a different warmup or source: dataset pairs")
    return pd.DataFrame(rows)
