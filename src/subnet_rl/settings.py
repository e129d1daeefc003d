"""The typed settings of a training run: one frozen dataclass per config section, as TRL's configs are.

`TrainingSpec` holds what every algorithm has (the `training` section, the shared keys of a run entry
and of `model.warmup`); each algorithm's own settings class (named by its `algorithms` registry entry)
holds what only it reads (the `grpo`, `dpo`, ... sections and a run entry's other keys). A setting two
algorithms share (DPO's, KTO's and Online DPO's `dpo_beta`) is defined once, in a small base class both
inherit, so it has one default and one meaning. `RolloutSettings` is the `generation` section, part of
every online algorithm's settings.

Arithmetic-free and import-free on purpose: the config, the registry and the memory plan all import it
(the plan runs while Snakemake parses the Snakefile). workflow/schemas/config.schema.yaml defines the
same settings under `$defs`, one definition per class of this module (a test keeps the two equal).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrainingSpec:
    """What every training run has, whatever its algorithm (TrainingArguments and the data's lengths)."""

    lr: float
    steps: int
    seed: int = 0                    # a run entry must name its seed; the warmup's default is 0
    precision: str = "fp32"          # weights: fp32, or bf16 (stored and updated in bf16)
    autocast: str = "none"           # compute: none (as the weights), or bf16 mixed precision
    deterministic: bool = False      # TrainingArguments.full_determinism (deterministic cuBLAS/cuDNN)
    batch_size: int = 64             # prompts (GRPO, RLOO) or examples/pairs per device and micro-step
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = False
    weight_decay: float = 0.0
    optimizer: str = "adamw"         # adamw (the Trainer's default, fused AdamW) | sgd (plain: no momentum)
    max_grad_norm: float = 1.0       # 0: no gradient clipping
    warmup_steps: int = 0
    # Token lengths, or "auto": the training job sets each from the data it trains on (`lengths`).
    max_prompt_length: int | str = "auto"  # prompts longer than this fail (or are dropped with drop_overlong)
    max_length: int | str = "auto"   # prompt + completion of SFT and preference data; longer would cut the answer
    drop_overlong: bool = False
    save_every: int = 0              # > 0: snapshot every N steps (training dynamics); 0: final only
    save_steps: int = 0              # > 0: resumable Trainer checkpoint every N steps; 0: none
    report_to: tuple[str, ...] = ()  # trackers (tensorboard, wandb, trackio); () = none
    sharding: str = "auto"           # ddp | fsdp2 | auto (FSDP2 when the memory plan says a replica does not fit)
    step_sparsity: bool = False      # record the % of entries whose bf16 value changed at each optimizer step

    def __post_init__(self):
        # One spelling of the trackers (a YAML string or list, a JSON list), so equal specs compare equal.
        trackers = (self.report_to,) if isinstance(self.report_to, str) else tuple(self.report_to)
        object.__setattr__(self, "report_to", tuple(t for t in trackers if t != "none"))
        if self.optimizer not in OPTIMIZERS:  # the schema says so too; a spec built in code is checked here
            raise ValueError(f"optimizer {self.optimizer!r}: one of {OPTIMIZERS}")
        for key, least in LENGTH_MINIMUM.items():
            value = getattr(self, key)
            whole = isinstance(value, int) and not isinstance(value, bool)
            if value != AUTO_LENGTH and not (whole and value >= least):
                raise ValueError(f"{key} {value!r}: a whole number of tokens >= {least}, or {AUTO_LENGTH!r} (the "
                                 "longest in the run's tokenized training data, measured when the job starts)")


#: the `optimizer` setting's values: the Trainer's own optimizers (`training.optimizer_args` names them to
#: TrainingArguments.optim); SGD is torch's, without momentum (no optimizer state).
OPTIMIZERS = ("adamw", "sgd")
#: the value of `max_prompt_length` and `max_length` that the training job replaces with the longest prompt
#: (and prompt + completion) of its tokenized training data (`lengths.fit_lengths`).
AUTO_LENGTH = "auto"
#: the length settings and the least whole value of each (a sequence holds a prompt and a completion token).
LENGTH_MINIMUM = {"max_prompt_length": 1, "max_length": 2}
#: what `sharding: auto` resolves to: a full replica per GPU, or FSDP2's shards.
SHARDINGS = ("ddp", "fsdp2")
#: TrainingSpec fields a run entry must give itself (the `training` and algorithm sections hold no default).
RUN_OWN = ("lr", "steps", "seed")


@dataclass(frozen=True)
class AlgorithmSettings:
    """Base of every algorithm's own settings (SFT has none beyond the shared ones)."""


@dataclass(frozen=True)
class RolloutSettings(AlgorithmSettings):
    """How online algorithms sample (the config's `generation` section): the model's generate (hf) or TRL's
    vLLM integration, colocated in the training processes or a `trl vllm-serve` server."""

    generation_engine: str = "hf"
    vllm_mode: str = "colocate"
    vllm_gpu_memory_utilization: float = 0.3
    vllm_tensor_parallel_size: int = 1


#: the config's `generation` keys -> RolloutSettings fields
GENERATION_KEYS = {"engine": "generation_engine", "vllm_mode": "vllm_mode",
                   "gpu_memory_utilization": "vllm_gpu_memory_utilization",
                   "tensor_parallel_size": "vllm_tensor_parallel_size"}


@dataclass(frozen=True)
class Sampling(RolloutSettings):
    """What an online algorithm's completions are: their length and sampling temperature."""

    temperature: float = 1.0
    max_new_tokens: int = 5          # completion length


@dataclass(frozen=True)
class GroupSampling(Sampling):
    """GRPO's and RLOO's groups: batch_size prompts x num_generations completions, a KL term, μ."""

    num_generations: int = 8
    kl_beta: float = 0.0
    num_iterations: int = 1          # optimizer steps per generation batch (μ)


@dataclass(frozen=True)
class DPOBeta(AlgorithmSettings):
    dpo_beta: float = 0.1            # beta of DPO, KTO and Online DPO


@dataclass(frozen=True)
class SFTTerm(AlgorithmSettings):
    sft_weight: float = 1.0          # DPO and SimPO (cpo_alpha): an added SFT loss on the chosen answer


@dataclass(frozen=True)
class Pairs(AlgorithmSettings):
    """Offline preference algorithms: which (prompt, chosen, rejected) pairs they train on."""

    pairs: str = "on_policy"         # on_policy | off_policy | dataset


@dataclass(frozen=True)
class GRPOSettings(GroupSampling):
    grpo_loss_type: str = "dapo"     # TRL's default; grpo, dr_grpo, dapo, bnpo


@dataclass(frozen=True)
class RLOOSettings(GroupSampling):
    pass


@dataclass(frozen=True)
class OnlineDPOSettings(Sampling, DPOBeta):
    pass


@dataclass(frozen=True)
class DPOSettings(Pairs, DPOBeta, SFTTerm):
    pass


@dataclass(frozen=True)
class KTOSettings(Pairs, DPOBeta):
    pass


@dataclass(frozen=True)
class ORPOSettings(Pairs):
    orpo_beta: float = 0.1           # ORPO's lambda (TRL's beta)


@dataclass(frozen=True)
class SimPOSettings(Pairs, SFTTerm):
    simpo_beta: float = 2.0          # SimPO's beta (reward scale)
    simpo_gamma: float = 0.5         # SimPO's target reward margin


@dataclass(frozen=True)
class SFTSettings(AlgorithmSettings):
    pass


def field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def generation_settings(section: dict[str, Any]) -> dict[str, Any]:
    """The `generation` section as RolloutSettings fields."""
    return {GENERATION_KEYS[k]: v for k, v in section.items() if k in GENERATION_KEYS}
