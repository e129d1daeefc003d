"""Generation and greedy accuracy on a test split, scored by the dataset's task.

Every completion says whether it was clipped: generation stopped at `max_new_tokens`, not at EOS. The
task reads no answer from a clipped completion whose answer runs into the cut, so an accuracy does not
move with the token limit by scoring the digits a cut left ("#### 1" of "#### 10").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from .prompting import render_all
from .tasks import Task


@dataclass(frozen=True)
class Completion:
    text: str
    #: generation stopped at the token limit, not at EOS: the text may end inside its answer.
    clipped: bool


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def clipped_rows(new_tokens: torch.Tensor, max_new_tokens: int, eos_token_id: int | Sequence[int] | None) -> list[bool]:
    """Per generated row (the tokens after the prompt): True when it holds no EOS and reached the limit.

    A finished row ends in EOS (then pad, which is often EOS itself); one of exactly `max_new_tokens`
    whose last token is EOS ended by itself. Without an EOS id every row that reached the limit is clipped.
    """
    rows = new_tokens.shape[0]
    if new_tokens.shape[1] < max_new_tokens:  # generate stops early only when every row has ended
        return [False] * rows
    if eos_token_id is None:
        return [True] * rows
    eos = torch.as_tensor([eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id),
                          device=new_tokens.device)
    return (~torch.isin(new_tokens, eos).any(dim=1)).tolist()


def generate(model, tokenizer, prompts: list, max_new_tokens: int, batch_size: int = 512,
             samples: int = 1, temperature: float | None = None) -> list[list[str]]:
    """Completion texts for each prompt, as `generate_completions` makes them (for callers that do not
    score an answer at the cut)."""
    return [[c.text for c in group] for group in generate_completions(
        model, tokenizer, prompts, max_new_tokens, batch_size, samples, temperature)]


@torch.no_grad()
def generate_completions(model, tokenizer, prompts: list, max_new_tokens: int, batch_size: int = 512,
                         samples: int = 1, temperature: float | None = None) -> list[list[Completion]]:
    """Completions for each prompt (text, or a conversation rendered with the chat template): greedy when
    temperature is None, else `samples` sampled ones; each says whether it stopped at the token limit."""
    model.eval()
    device = default_device()
    model.to(device)
    sampling = temperature is not None
    texts_in = render_all(tokenizer, prompts)
    out: list[list[Completion]] = []
    eos = tokenizer.eos_token_id  # the only stop token generate is given, so the only one that ends a row
    for start in range(0, len(texts_in), batch_size):
        batch = texts_in[start : start + batch_size]
        enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        generated = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=sampling,
            temperature=temperature if sampling else None,
            top_p=None,
            top_k=None,
            num_return_sequences=samples,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=eos,
        )
        new_tokens = generated[:, enc["input_ids"].shape[1] :]
        rows = [Completion(text, clipped) for text, clipped in zip(
            tokenizer.batch_decode(new_tokens, skip_special_tokens=True),
            clipped_rows(new_tokens, max_new_tokens, eos), strict=True)]
        out.extend(rows[i * samples : (i + 1) * samples] for i in range(len(batch)))
    return out


def score(task: Task, reward: str, completions: list[Completion], answers: list[str]) -> pd.DataFrame:
    """Per completion: whether it was clipped, the gold and scored final answers (None for one clipped
    inside its answer), correctness and reward, as the task defines; and `correct_off_policy_form`, whether it
    is the answer in the form off-policy preference pairs teach (`Task.off_policy_answer`), so a run trained on
    them shows whether it learned that form instead of the task's (`outcomes`)."""
    return pd.DataFrame({
        "clipped": [c.clipped for c in completions],
        "gold": [task.gold(a) for a in answers],
        "extracted": [task.answer(c.text, c.clipped) for c in completions],
        "correct": [task.is_correct(c.text, a, c.clipped) for c, a in zip(completions, answers, strict=True)],
        "reward": [task.reward(c.text, a, reward, c.clipped) for c, a in zip(completions, answers, strict=True)],
        "correct_off_policy_form": [task.is_correct(c.text, task.off_policy_answer(a), c.clipped)
                                    for c, a in zip(completions, answers, strict=True)],
    })


def vllm_greedy(checkpoint, tokenizer, prompts: list, max_new_tokens: int,
                tensor_parallel_size: int = 1) -> list[Completion]:
    """Greedy completions from vLLM (temperature 0), prompts rendered as for `generate`; vLLM's
    finish_reason "length" is a clipped one.

    Not run on the project's machines (vLLM needs CUDA); the config check stops earlier when vllm is
    not importable."""
    from vllm import LLM, SamplingParams

    llm = LLM(model=str(checkpoint), tokenizer=str(checkpoint), tensor_parallel_size=tensor_parallel_size)
    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
    return [Completion(out.outputs[0].text, out.outputs[0].finish_reason == "length")
            for out in llm.generate(render_all(tokenizer, prompts), params)]


def evaluate_checkpoint(checkpoint, test: pd.DataFrame, task: Task, reward: str, max_new_tokens: int,
                        batch_size: int = 512, engine: str = "hf") -> pd.DataFrame:
    """Greedy accuracy of a checkpoint folder with the chosen engine (hf: the model's generate; vllm)."""
    from .models import load_checkpoint, load_tokenizer

    if engine == "vllm":
        completions = vllm_greedy(checkpoint, load_tokenizer(checkpoint), list(test["prompt"]), max_new_tokens)
        return scored_table(test, completions, task, reward)
    model, tokenizer = load_checkpoint(checkpoint)
    return greedy_eval(model, tokenizer, test, task, reward, max_new_tokens, batch_size)


def greedy_eval(model, tokenizer, test: pd.DataFrame, task: Task, reward: str, max_new_tokens: int,
                batch_size: int = 512) -> pd.DataFrame:
    """One row per test example: prompt, answer, completion, clipped, gold, extracted, correct, reward."""
    completions = [c[0] for c in generate_completions(model, tokenizer, list(test["prompt"]), max_new_tokens,
                                                      batch_size)]
    return scored_table(test, completions, task, reward)


def scored_table(test: pd.DataFrame, completions: list[Completion], task: Task, reward: str) -> pd.DataFrame:
    answers = [str(a) for a in test["answer"]]
    return pd.concat([
        pd.DataFrame({"prompt": test["prompt"].to_numpy(), "answer": answers,
                      "completion": [c.text for c in completions]}),
        score(task, reward, completions, answers),
    ], axis=1)
