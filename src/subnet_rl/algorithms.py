"""The training algorithms a run may name: one registry, each entry a TRL trainer and what it needs.

Every algorithm is TRL's own trainer (never a hand-written loss). TRL 1.16 ships no PPO and no PRIME
trainer, so neither is offered; their public checkpoint pairs are diffed from `config/paper.yaml`.
What an algorithm needs decides the workflow's plumbing: online algorithms sample from the policy
while training and score samples with the dataset task's reward; offline preference algorithms read
(prompt, chosen, rejected) pairs, on-policy (sampled from the start model), off-policy or the
dataset's own; SFT reads reference answers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .prompting import as_completion, as_messages, is_conversation
from .tasks import get_task, reward_function

if TYPE_CHECKING:
    import pandas as pd

    from .config import RunSpec


@dataclass(frozen=True)
class Algorithm:
    """A trainer and what it reads: `prompts` (prompt, answer), `pairs` (prompt, chosen, rejected) or
    `answers` (prompt + reference completion, for SFT)."""

    name: str
    data: str
    #: what it needs of the dataset's task: "a reward" (online RL), "reference answers" (SFT), or nothing.
    needs: str | None
    #: counted as RL/preference finetuning in the findings; SFT is the control.
    is_rl: bool
    trainer: str
    build: Callable[..., Any]

    @property
    def reads_pairs(self) -> bool:
        return self.data == "pairs"


def trl_records(df: pd.DataFrame, columns: list[str]) -> dict[str, list]:
    """Columns as TRL expects them: strings, or conversations as plain lists of {role, content}."""
    return {c: [as_messages(v) if is_conversation(v) else v for v in df[c]] for c in columns}


def _dataset(df: pd.DataFrame, columns: list[str]):
    from datasets import Dataset

    return Dataset.from_dict(trl_records(df, columns))


def _reward(spec: RunSpec):
    return reward_function(get_task(spec.task), spec.reward)


def _sft(spec: RunSpec, model, tokenizer, df, common: dict, callbacks: list):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    completions = [as_completion(p, a) for p, a in zip(df["prompt"], df["answer"], strict=True)]
    data = Dataset.from_dict({**trl_records(df, ["prompt"]), "completion": completions})
    args = SFTConfig(per_device_train_batch_size=spec.batch_size, max_length=spec.max_length, **common)
    return SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, callbacks=callbacks)


#: what online algorithms read: prompts, and the answers their reward scores samples against.
PROMPT_COLUMNS = ["prompt", "answer"]


def rollout_engine(spec: RunSpec) -> dict:
    """How online algorithms sample: the model's `generate`, or TRL's vLLM integration (colocated in the
    training processes, or a `trl vllm-serve` server), with its memory share and tensor parallelism."""
    if spec.generation_engine != "vllm":
        return {"use_vllm": False}
    return {"use_vllm": True, "vllm_mode": spec.vllm_mode,
            "vllm_gpu_memory_utilization": spec.vllm_gpu_memory_utilization,
            "vllm_tensor_parallel_size": spec.vllm_tensor_parallel_size}


def _sampling(spec: RunSpec) -> dict:
    """Group-sampling settings shared by GRPO and RLOO (batch_size prompts x num_generations completions)."""
    return dict(per_device_train_batch_size=spec.batch_size * spec.num_generations,
                num_generations=spec.num_generations, max_completion_length=spec.max_new_tokens,
                temperature=spec.temperature, beta=spec.kl_beta, num_iterations=spec.num_iterations,
                **rollout_engine(spec))


def trl_config(spec: RunSpec, common: dict):
    """The TRL config an online algorithm's trainer is built with (also what the tests check)."""
    if spec.algorithm == "grpo":
        from trl import GRPOConfig

        return GRPOConfig(loss_type=spec.grpo_loss_type, **_sampling(spec), **common)
    if spec.algorithm == "rloo":
        from trl import RLOOConfig

        return RLOOConfig(**_sampling(spec), **common)
    if spec.algorithm == "online_dpo":
        from trl.experimental.online_dpo import OnlineDPOConfig

        return OnlineDPOConfig(per_device_train_batch_size=spec.batch_size, beta=spec.dpo_beta,
                               max_new_tokens=spec.max_new_tokens, max_length=spec.max_length,
                               temperature=spec.temperature, **rollout_engine(spec), **common)
    raise ValueError(f"{spec.algorithm} samples nothing while training; it has no rollout config")


def _grpo(spec: RunSpec, model, tokenizer, df, common: dict, callbacks: list):
    from trl import GRPOTrainer

    args = trl_config(spec, common)
    return GRPOTrainer(model=model, reward_funcs=_reward(spec), args=args, train_dataset=_dataset(df, PROMPT_COLUMNS),
                       processing_class=tokenizer, callbacks=callbacks)


def _rloo(spec: RunSpec, model, tokenizer, df, common: dict, callbacks: list):
    from trl import RLOOTrainer

    args = trl_config(spec, common)
    return RLOOTrainer(model=model, reward_funcs=_reward(spec), args=args, train_dataset=_dataset(df, PROMPT_COLUMNS),
                       processing_class=tokenizer, callbacks=callbacks)


def _online_dpo(spec: RunSpec, model, tokenizer, df, common: dict, callbacks: list):
    """Online DPO: two samples per prompt, the task's reward as judge (the better one is chosen)."""
    from trl.experimental.online_dpo import OnlineDPOTrainer

    args = trl_config(spec, common)
    return OnlineDPOTrainer(model=model, reward_funcs=[_reward(spec)], args=args,
                            train_dataset=_dataset(df, PROMPT_COLUMNS), processing_class=tokenizer,
                            callbacks=callbacks)


PAIR_COLUMNS = ["prompt", "chosen", "rejected"]


def _dpo(spec: RunSpec, model, tokenizer, df, common: dict, callbacks: list):
    from trl import DPOConfig, DPOTrainer

    losses = {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, spec.sft_weight]} if spec.sft_weight else {}
    args = DPOConfig(per_device_train_batch_size=spec.batch_size, beta=spec.dpo_beta, max_length=spec.max_length,
                     **losses, **common)
    return DPOTrainer(model=model, args=args, train_dataset=_dataset(df, PAIR_COLUMNS), processing_class=tokenizer,
                      callbacks=callbacks)


def _kto(spec: RunSpec, model, tokenizer, df, common: dict, callbacks: list):
    """KTO on the pairs, which TRL unpairs (chosen: desirable, rejected: undesirable).

    TRL's KTO reads its data in order (`train_sampling_strategy: sequential`: its KL estimate pairs each
    example with its batch neighbours), so the seed would not reach the data order and two seeds would be
    one run, bit for bit (measured); the pairs are shuffled with the run's seed first.
    """
    from trl import KTOConfig, KTOTrainer

    df = df.sample(frac=1.0, random_state=spec.seed).reset_index(drop=True)
    args = KTOConfig(per_device_train_batch_size=spec.batch_size, beta=spec.dpo_beta, max_length=spec.max_length,
                     **common)
    return KTOTrainer(model=model, args=args, train_dataset=_dataset(df, PAIR_COLUMNS),
                      processing_class=without_added_bos(tokenizer), callbacks=callbacks)


def without_added_bos(tokenizer):
    """The tokenizer as the KTO, ORPO and CPO trainers should see it.

    They put a BOS token before every prompt that does not already start with one. A model prompted
    without BOS everywhere else (its tokenizer adds none, like the embedded one's) would then be trained
    on text it never sees: its log-likelihood of its own answers drops below uniform and training
    collapses. A copy without `bos_token` keeps prompts as every other stage renders them; a tokenizer
    that adds BOS itself (Llama) is returned as it is.
    """
    if tokenizer.bos_token_id is None:
        return tokenizer
    ids = tokenizer("1", add_special_tokens=True)["input_ids"]
    if ids and ids[0] == tokenizer.bos_token_id:
        return tokenizer
    plain = copy.deepcopy(tokenizer)
    plain.bos_token = None
    return plain


def _orpo(spec: RunSpec, model, tokenizer, df, common: dict, callbacks: list):
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    args = ORPOConfig(per_device_train_batch_size=spec.batch_size, beta=spec.orpo_beta, max_length=spec.max_length,
                      **common)
    return ORPOTrainer(model=model, args=args, train_dataset=_dataset(df, PAIR_COLUMNS),
                       processing_class=without_added_bos(tokenizer), callbacks=callbacks)


def _simpo(spec: RunSpec, model, tokenizer, df, common: dict, callbacks: list):
    """SimPO: TRL's CPO trainer with its SimPO loss; `sft_weight` is its NLL term on the chosen answer (TRL's
    cpo_alpha: 0 is pure SimPO, > 0 "CPO-SimPO"), as for DPO."""
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    args = CPOConfig(per_device_train_batch_size=spec.batch_size, loss_type="simpo", cpo_alpha=spec.sft_weight,
                     beta=spec.simpo_beta, simpo_gamma=spec.simpo_gamma, max_length=spec.max_length, **common)
    return CPOTrainer(model=model, args=args, train_dataset=_dataset(df, PAIR_COLUMNS),
                      processing_class=without_added_bos(tokenizer), callbacks=callbacks)


ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in [
    Algorithm("grpo", "prompts", "a reward", True, "trl.GRPOTrainer", _grpo),
    Algorithm("rloo", "prompts", "a reward", True, "trl.RLOOTrainer", _rloo),
    Algorithm("online_dpo", "prompts", "a reward", True, "trl.experimental.online_dpo.OnlineDPOTrainer", _online_dpo),
    Algorithm("dpo", "pairs", None, True, "trl.DPOTrainer", _dpo),
    Algorithm("kto", "pairs", None, True, "trl.KTOTrainer", _kto),
    Algorithm("orpo", "pairs", None, True, "trl.experimental.orpo.ORPOTrainer", _orpo),
    Algorithm("simpo", "pairs", None, True, "trl.experimental.cpo.CPOTrainer (loss_type=simpo)", _simpo),
    Algorithm("sft", "answers", "reference answers", False, "trl.SFTTrainer", _sft),
]}


def get_algorithm(name: str) -> Algorithm:
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; known: {sorted(ALGORITHMS)} (TRL 1.16 ships no PPO or "
                         "PRIME trainer)") from None
