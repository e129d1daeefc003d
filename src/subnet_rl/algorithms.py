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
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .prompting import as_completion, as_messages, is_conversation
from .settings import (
    AlgorithmSettings,
    DPOSettings,
    GroupSampling,
    GRPOSettings,
    KTOSettings,
    OnlineDPOSettings,
    ORPOSettings,
    RLOOSettings,
    RolloutSettings,
    SFTSettings,
    SimPOSettings,
    TrainingSpec,
)
from .tasks import get_task, reward_function

if TYPE_CHECKING:
    import pandas as pd

    from .config import RunSpec


@dataclass(frozen=True)
class Algorithm:
    """A trainer and what it reads: `prompts` (prompt, answer), `pairs` (prompt, chosen, rejected) or
    `answers` (prompt + reference completion, for SFT); its own settings (`settings`, beside the shared
    `TrainingSpec`) and how they become its TRL config's arguments."""

    name: str
    data: str
    #: what it needs of the dataset's task: "a reward" (online RL), "reference answers" (SFT), or nothing.
    needs: str | None
    #: counted as RL/preference finetuning in the findings; SFT is the control.
    is_rl: bool
    #: TRL's trainer and config classes (import paths; TRL is imported when a run trains).
    trainer: str
    config: str
    #: the algorithm's own settings class: what a run entry and the algorithm's config section may set.
    settings: type[AlgorithmSettings]
    #: its TRL config's arguments beyond the TrainingArguments every trainer shares.
    arguments: Callable[[TrainingSpec, Any], dict[str, Any]]
    #: the trainer on its data: (trainer class, spec, model, tokenizer, data, TRL config, callbacks).
    build: Callable[..., Any]

    @property
    def reads_pairs(self) -> bool:
        return self.data == "pairs"


def import_object(path: str) -> Any:
    """`package.module.Name` -> the object (TRL's classes are imported only when a run trains)."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def trl_arguments(spec: RunSpec, common: dict[str, Any]) -> dict[str, Any]:
    """Everything the run's TRL config is built with: its algorithm's arguments and the shared `common`
    TrainingArguments (`training._common_args`); also what the tests hold against today's values."""
    own = get_algorithm(spec.algorithm).arguments(spec.training, spec.settings)
    clash = sorted(own.keys() & common.keys())
    if clash:
        raise ValueError(f"{spec.algorithm}: {clash} set twice (by the algorithm and the shared arguments)")
    return {**own, **common}


def trl_config(spec: RunSpec, common: dict[str, Any]):
    """The TRL config the run's trainer is built with."""
    return import_object(get_algorithm(spec.algorithm).config)(**trl_arguments(spec, common))


# -- each algorithm's TRL config arguments, from its settings ------------------------------------------
def _batch(training: TrainingSpec) -> dict[str, Any]:
    """Examples (SFT) or pairs per device and micro-step, and their longest prompt + completion (in tokens:
    the training job replaces `auto` with the data's longest before the config is built, `lengths`)."""
    if not isinstance(training.max_length, int):
        raise ValueError(f"max_length {training.max_length!r} is not resolved: TRL needs tokens; the training job "
                         "measures it from its data first (lengths.fit_run, with_lengths)")
    return {"per_device_train_batch_size": training.batch_size, "max_length": training.max_length}


def rollout_engine(settings: RolloutSettings) -> dict[str, Any]:
    """How online algorithms sample: the model's `generate`, or TRL's vLLM integration (colocated in the
    training processes, or a `trl vllm-serve` server), with its memory share and tensor parallelism."""
    if settings.generation_engine != "vllm":
        return {"use_vllm": False}
    return {"use_vllm": True, "vllm_mode": settings.vllm_mode,
            "vllm_gpu_memory_utilization": settings.vllm_gpu_memory_utilization,
            "vllm_tensor_parallel_size": settings.vllm_tensor_parallel_size}


def _group_sampling(training: TrainingSpec, settings: GroupSampling) -> dict[str, Any]:
    """GRPO and RLOO: batch_size prompts x num_generations completions per device and micro-step."""
    return dict(per_device_train_batch_size=training.batch_size * settings.num_generations,
                num_generations=settings.num_generations, max_completion_length=settings.max_new_tokens,
                temperature=settings.temperature, beta=settings.kl_beta, num_iterations=settings.num_iterations,
                **rollout_engine(settings))


def _grpo_arguments(training: TrainingSpec, settings: GRPOSettings) -> dict[str, Any]:
    return {"loss_type": settings.grpo_loss_type, **_group_sampling(training, settings)}


def _online_dpo_arguments(training: TrainingSpec, settings: OnlineDPOSettings) -> dict[str, Any]:
    return {**_batch(training), "beta": settings.dpo_beta, "max_new_tokens": settings.max_new_tokens,
            "temperature": settings.temperature, **rollout_engine(settings)}


def _sft_arguments(training: TrainingSpec, settings: SFTSettings) -> dict[str, Any]:
    return _batch(training)


def _dpo_arguments(training: TrainingSpec, settings: DPOSettings) -> dict[str, Any]:
    """DPO's sigmoid loss, plus an SFT (NLL) term on the chosen answer weighted `sft_weight` when it is > 0."""
    losses = {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, settings.sft_weight]} if settings.sft_weight else {}
    return {**_batch(training), "beta": settings.dpo_beta, **losses}


def _kto_arguments(training: TrainingSpec, settings: KTOSettings) -> dict[str, Any]:
    return {**_batch(training), "beta": settings.dpo_beta}


def _orpo_arguments(training: TrainingSpec, settings: ORPOSettings) -> dict[str, Any]:
    return {**_batch(training), "beta": settings.orpo_beta}


def _simpo_arguments(training: TrainingSpec, settings: SimPOSettings) -> dict[str, Any]:
    """SimPO: TRL's CPO trainer with its SimPO loss; `sft_weight` is its NLL term on the chosen answer (TRL's
    cpo_alpha: 0 is pure SimPO, > 0 "CPO-SimPO"), as for DPO."""
    return {**_batch(training), "loss_type": "simpo", "cpo_alpha": settings.sft_weight, "beta": settings.simpo_beta,
            "simpo_gamma": settings.simpo_gamma}


# -- each algorithm's trainer on its data ------------------------------------------------------------
def trl_records(df: pd.DataFrame, columns: list[str]) -> dict[str, list]:
    """Columns as TRL expects them: strings, or conversations as plain lists of {role, content}."""
    return {c: [as_messages(v) if is_conversation(v) else v for v in df[c]] for c in columns}


def _dataset(df: pd.DataFrame, columns: list[str]):
    from datasets import Dataset

    return Dataset.from_dict(trl_records(df, columns))


def _reward(spec: RunSpec):
    return reward_function(get_task(spec.task), spec.reward)


def _train_on_answers(trainer_class, spec: RunSpec, model, tokenizer, df, args, callbacks: list):
    """SFT on prompt + reference completion."""
    from datasets import Dataset

    completions = [as_completion(p, a) for p, a in zip(df["prompt"], df["answer"], strict=True)]
    data = Dataset.from_dict({**trl_records(df, ["prompt"]), "completion": completions})
    return trainer_class(model=model, args=args, train_dataset=data, processing_class=tokenizer, callbacks=callbacks)


#: what online algorithms read: prompts, and the answers their reward scores samples against.
PROMPT_COLUMNS = ["prompt", "answer"]


def _train_on_prompts(trainer_class, spec: RunSpec, model, tokenizer, df, args, callbacks: list):
    """GRPO, RLOO and Online DPO sample from the policy and score samples with the task's reward (Online DPO:
    two samples per prompt, the reward as judge, the better one chosen; its trainer takes a list)."""
    reward = _reward(spec)
    return trainer_class(model=model, reward_funcs=[reward] if spec.algorithm == "online_dpo" else reward,
                         args=args, train_dataset=_dataset(df, PROMPT_COLUMNS), processing_class=tokenizer,
                         callbacks=callbacks)


PAIR_COLUMNS = ["prompt", "chosen", "rejected"]


def _train_on_pairs(trainer_class, spec: RunSpec, model, tokenizer, df, args, callbacks: list):
    """DPO on the pairs."""
    return trainer_class(model=model, args=args, train_dataset=_dataset(df, PAIR_COLUMNS), processing_class=tokenizer,
                         callbacks=callbacks)


def _train_on_pairs_without_bos(trainer_class, spec: RunSpec, model, tokenizer, df, args, callbacks: list):
    """ORPO and SimPO (TRL's CPO trainer): the pairs, prompts as every other stage renders them."""
    return _train_on_pairs(trainer_class, spec, model, without_added_bos(tokenizer), df, args, callbacks)


def _train_kto(trainer_class, spec: RunSpec, model, tokenizer, df, args, callbacks: list):
    """KTO on the pairs, which TRL unpairs (chosen: desirable, rejected: undesirable).

    TRL's KTO reads its data in order (`train_sampling_strategy: sequential`: its KL estimate pairs each
    example with its batch neighbours), so the seed would not reach the data order and two seeds would be
    one run, bit for bit (measured); the pairs are shuffled with the run's seed first.
    """
    df = df.sample(frac=1.0, random_state=spec.seed).reset_index(drop=True)
    return _train_on_pairs_without_bos(trainer_class, spec, model, tokenizer, df, args, callbacks)


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


#: In the order of the figures' algorithm colours (subnet_rl.figures.algorithm_palette): SFT, the control, 7th (black).
ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in [
    Algorithm("grpo", "prompts", "a reward", True, "trl.GRPOTrainer", "trl.GRPOConfig", GRPOSettings,
              _grpo_arguments, _train_on_prompts),
    Algorithm("rloo", "prompts", "a reward", True, "trl.RLOOTrainer", "trl.RLOOConfig", RLOOSettings,
              _group_sampling, _train_on_prompts),
    Algorithm("dpo", "pairs", None, True, "trl.DPOTrainer", "trl.DPOConfig", DPOSettings, _dpo_arguments,
              _train_on_pairs),
    Algorithm("kto", "pairs", None, True, "trl.KTOTrainer", "trl.KTOConfig", KTOSettings, _kto_arguments, _train_kto),
    Algorithm("orpo", "pairs", None, True, "trl.experimental.orpo.ORPOTrainer", "trl.experimental.orpo.ORPOConfig",
              ORPOSettings, _orpo_arguments, _train_on_pairs_without_bos),
    Algorithm("simpo", "pairs", None, True, "trl.experimental.cpo.CPOTrainer", "trl.experimental.cpo.CPOConfig",
              SimPOSettings, _simpo_arguments, _train_on_pairs_without_bos),
    Algorithm("sft", "answers", "reference answers", False, "trl.SFTTrainer", "trl.SFTConfig", SFTSettings,
              _sft_arguments, _train_on_answers),
    Algorithm("online_dpo", "prompts", "a reward", True, "trl.experimental.online_dpo.OnlineDPOTrainer",
              "trl.experimental.online_dpo.OnlineDPOConfig", OnlineDPOSettings, _online_dpo_arguments,
              _train_on_prompts),
]}


def trl_trainer(spec: RunSpec, model, tokenizer, df, common: dict[str, Any], callbacks: list):
    """The run's TRL trainer, its config built from the run's settings and the shared `common` arguments."""
    algorithm = get_algorithm(spec.algorithm)
    return algorithm.build(import_object(algorithm.trainer), spec, model, tokenizer, df, trl_config(spec, common),
                           callbacks)


def get_algorithm(name: str) -> Algorithm:
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; known: {sorted(ALGORITHMS)} (TRL 1.16 ships no PPO or "
                         "PRIME trainer)") from None
