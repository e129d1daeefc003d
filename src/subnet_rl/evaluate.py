"""Generation and greedy accuracy on a test split, scored by the dataset's task."""

from __future__ import annotations

import pandas as pd
import torch

from .prompting import render_all
from .tasks import Task


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def generate(model, tokenizer, prompts: list, max_new_tokens: int, batch_size: int = 512,
             samples: int = 1, temperature: float | None = None) -> list[list[str]]:
    """Completions for each prompt (text, or a conversation rendered with the chat template): greedy when
    temperature is None, else `samples` sampled ones."""
    model.eval()
    device = default_device()
    model.to(device)
    sampling = temperature is not None
    texts_in = render_all(tokenizer, prompts)
    out: list[list[str]] = []
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
            eos_token_id=tokenizer.eos_token_id,
        )
        texts = tokenizer.batch_decode(generated[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        out.extend(texts[i * samples : (i + 1) * samples] for i in range(len(batch)))
    return out


def score(task: Task, reward: str, completions: list[str], answers: list[str]) -> pd.DataFrame:
    """Per completion: the gold and extracted final answers, correctness and reward, as the task defines."""
    return pd.DataFrame({
        "gold": [task.gold(a) for a in answers],
        "extracted": [task.extract(c) for c in completions],
        "correct": [task.is_correct(c, a) for c, a in zip(completions, answers, strict=True)],
        "reward": [task.reward(c, a, reward) for c, a in zip(completions, answers, strict=True)],
    })


def vllm_greedy(checkpoint, tokenizer, prompts: list, max_new_tokens: int, tensor_parallel_size: int = 1) -> list[str]:
    """Greedy completions from vLLM (temperature 0), prompts rendered as for `generate`.

    Not run on the project's machines (vLLM needs CUDA); the config check stops earlier when vllm is
    not importable."""
    from vllm import LLM, SamplingParams

    llm = LLM(model=str(checkpoint), tokenizer=str(checkpoint), tensor_parallel_size=tensor_parallel_size)
    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
    return [out.outputs[0].text for out in llm.generate(render_all(tokenizer, prompts), params)]


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
    """One row per test example: prompt, answer, completion, gold, extracted, correct, reward."""
    completions = [c[0] for c in generate(model, tokenizer, list(test["prompt"]), max_new_tokens, batch_size)]
    return scored_table(test, completions, task, reward)


def scored_table(test: pd.DataFrame, completions: list[str], task: Task, reward: str) -> pd.DataFrame:
    answers = [str(a) for a in test["answer"]]
    return pd.concat([
        pd.DataFrame({"prompt": test["prompt"].to_numpy(), "answer": answers, "completion": completions}),
        score(task, reward, completions, answers),
    ], axis=1)
