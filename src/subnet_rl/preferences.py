"""Preference pairs for offline algorithms: on-policy (sampled from the start checkpoint) or off-policy.

On-policy pairs keep DPO in-distribution (the regime the paper links to sparse updates); a prompt is
kept only when its samples contain at least one correct and one wrong answer, as the dataset's task
judges them. Off-policy pairs are their matched control (paper Table 5): the same prompts, with text
the policy would not produce. Both carry the start model's mean per-token log-likelihood of each side,
so "near" and "far" are measured, not asserted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .evaluate import default_device, generate
from .prompting import as_completion, render
from .tasks import Task, completion_text


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


def off_policy_pairs(on_policy: pd.DataFrame, references: list[str], task: Task) -> pd.DataFrame:
    """The on-policy pairs' prompts with text the policy does not produce: chosen = the prompt's reference
    answer in the task's off-policy form, rejected = another reference answer (from `references`, the train
    split's, taken in turn) that is not a right answer to it, in that form."""
    rows, n = [], len(references)
    for i, (prompt, answer) in enumerate(zip(on_policy["prompt"], on_policy["answer"], strict=True)):
        ordered = (references[(i + 1 + k) % n] for k in range(n))  # from the next one on, wrapping around
        other = next((a for a in ordered if task.gold(a) != task.gold(answer)), None)
        if other is not None:
            rows.append({"prompt": prompt, "answer": answer,
                         "chosen": as_completion(prompt, task.off_policy_answer(answer)),
                         "rejected": as_completion(prompt, task.off_policy_answer(other))})
    if not rows:
        raise ValueError("off-policy pairs need at least two different reference answers in the train split")
    return pd.DataFrame(rows)


@torch.no_grad()
def completion_logprobs(model, tokenizer, prompts: list, completions: list, batch_size: int = 256) -> np.ndarray:
    """Mean per-token log-likelihood of each completion after its prompt (EOS included, as trainers append
    it) under `model`: how close a text is to what the policy produces."""
    model.eval()
    device = default_device()
    model.to(device)
    examples = []
    for prompt, completion in zip(prompts, completions, strict=True):
        head = tokenizer(render(tokenizer, prompt), add_special_tokens=False)["input_ids"]
        tail = tokenizer(completion_text(completion), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        examples.append((head, tail))
    out = np.empty(len(examples))
    for start in range(0, len(examples), batch_size):
        batch = examples[start:start + batch_size]
        width = max(len(h) + len(t) for h, t in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros_like(ids)
        scored = torch.zeros(len(batch), width, dtype=torch.bool)
        for row, (head, tail) in enumerate(batch):
            ids[row, :len(head) + len(tail)] = torch.tensor(head + tail)
            attention[row, :len(head) + len(tail)] = 1
            scored[row, len(head):len(head) + len(tail)] = True
        ids, attention, scored = ids.to(device), attention.to(device), scored.to(device)
        logits = model(input_ids=ids, attention_mask=attention).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
        target = scored[:, 1:]
        out[start:start + len(batch)] = ((logp * target).sum(1) / target.sum(1)).cpu().numpy()
    return out


def with_likelihoods(model, tokenizer, pairs: pd.DataFrame) -> pd.DataFrame:
    """The pairs with `chosen_logp` and `rejected_logp`: mean per-token log-likelihood under `model`."""
    prompts = list(pairs["prompt"])
    return pairs.assign(**{f"{side}_logp": completion_logprobs(model, tokenizer, prompts, list(pairs[side]))
                           for side in ("chosen", "rejected")})
