"""RL and SFT training with TRL trainers (GRPO, DPO, continued SFT), optionally on a subnetwork.

The reward is the run's dataset task's (`tasks`), and prompts keep their format (plain text or
conversations) all the way to TRL, which applies the chat template itself.
"""

from __future__ import annotations

import os
import platform
import tempfile

import pandas as pd
import torch

from .config import RunSpec
from .lengths import enforce_lengths
from .masks import MaskFile
from .models import PRECISIONS, load_checkpoint, save_checkpoint
from .prompting import as_completion, as_messages, is_conversation
from .subnetwork import SubnetworkMask
from .tasks import get_task, reward_function


def hardware_args(autocast: str) -> dict:
    """TrainingArguments for this machine: the GPU when there is one; mixed precision only when asked.

    The weights' precision is the run's `precision` (how the model is loaded); `autocast: bf16` adds bf16
    compute over them. Nothing depends on the device: `precision: fp32` computes in fp32 on a GPU too,
    so the same config gives the same start checkpoint everywhere (up to GPU non-determinism).
    """
    cuda = torch.cuda.is_available()
    if autocast == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ValueError("autocast: bf16 was asked for, and this GPU does not support bf16; use autocast: none")
    return {"use_cpu": not cuda, "bf16": autocast == "bf16", "fp16": False}


def environment(args, spec: RunSpec) -> dict:
    """Where and with what a run was trained: device, library versions, the resolved TrainingArguments."""
    import accelerate
    import datasets
    import transformers
    import trl

    device = args.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {
        "device": str(device), "device_name": name, "world_size": args.world_size,
        # CPU runs with a fixed seed are bit-exact; GPU runs only with full determinism.
        "deterministic": bool(spec.deterministic or device.type == "cpu"),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "trl": trl.__version__,
                     "accelerate": accelerate.__version__, "datasets": datasets.__version__},
        "training_arguments": args.to_dict(),
    }


def trl_records(df: pd.DataFrame, columns: list[str]) -> dict[str, list]:
    """Columns as TRL expects them: strings, or conversations as plain lists of {role, content}."""
    return {c: [as_messages(v) if is_conversation(v) else v for v in df[c]] for c in columns}


def _common_args(spec: RunSpec, output_dir: str) -> dict:
    return dict(
        output_dir=output_dir,
        learning_rate=spec.lr,
        max_steps=spec.steps,
        seed=spec.seed,
        data_seed=spec.seed,
        weight_decay=spec.weight_decay,
        max_grad_norm=spec.max_grad_norm,
        warmup_steps=spec.warmup_steps,
        lr_scheduler_type="constant_with_warmup",
        gradient_accumulation_steps=spec.gradient_accumulation_steps,
        gradient_checkpointing=spec.gradient_checkpointing,
        logging_steps=max(1, spec.steps // 10),
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        full_determinism=spec.deterministic,
        **hardware_args(spec.autocast),
    )


def build_trainer(spec: RunSpec, model, tokenizer, train: pd.DataFrame | None, pairs: pd.DataFrame | None,
                  output_dir: str, callbacks: list):
    from datasets import Dataset

    common = _common_args(spec, output_dir)
    if spec.algorithm == "sft":
        from trl import SFTConfig, SFTTrainer

        completions = [as_completion(p, a) for p, a in zip(train["prompt"], train["answer"], strict=True)]
        data = Dataset.from_dict({**trl_records(train, ["prompt"]), "completion": completions})
        args = SFTConfig(per_device_train_batch_size=spec.batch_size, max_length=spec.max_length, **common)
        return SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                          callbacks=callbacks)
    if spec.algorithm == "grpo":
        from trl import GRPOConfig, GRPOTrainer

        data = Dataset.from_dict(trl_records(train, ["prompt", "answer"]))
        args = GRPOConfig(
            per_device_train_batch_size=spec.batch_size * spec.num_generations,
            num_generations=spec.num_generations,
            max_completion_length=spec.max_new_tokens,
            temperature=spec.temperature,
            beta=spec.kl_beta,
            loss_type=spec.grpo_loss_type,
            num_iterations=spec.num_iterations,
            **common,
        )
        reward = reward_function(get_task(spec.task), spec.reward)
        return GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=data,
                           processing_class=tokenizer, callbacks=callbacks)
    if spec.algorithm == "dpo":
        from trl import DPOConfig, DPOTrainer

        if pairs is None:
            raise ValueError(f"run {spec.name}: DPO needs preference pairs (prompt, chosen, rejected)")
        data = Dataset.from_dict(trl_records(pairs, ["prompt", "chosen", "rejected"]))
        losses = {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, spec.sft_weight]} if spec.sft_weight else {}
        args = DPOConfig(per_device_train_batch_size=spec.batch_size, beta=spec.dpo_beta, max_length=spec.max_length,
                         **losses, **common)
        return DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                          callbacks=callbacks)
    raise ValueError(f"run {spec.name}: unknown algorithm {spec.algorithm!r}")


def _within_lengths(spec: RunSpec, tokenizer, df: pd.DataFrame, algorithm: str) -> tuple[pd.DataFrame, int]:
    kept, dropped = enforce_lengths(df, tokenizer, algorithm, spec.max_prompt_length, spec.max_length,
                                    spec.drop_overlong, spec.dataset, spec.name)
    if dropped:
        print(f"drop_overlong: dropped {dropped} of {len(df)} rows of {spec.dataset!r} over the length limits "
              f"(max_prompt_length={spec.max_prompt_length}, max_length={spec.max_length})")
    return kept, dropped


def train(spec: RunSpec, start: str | os.PathLike, train_data: str | os.PathLike, out_dir: str | os.PathLike,
          pairs: str | os.PathLike | None = None, mask: str | os.PathLike | None = None) -> dict:
    """Train `spec` from the `start` checkpoint and save the result (atomically) to `out_dir`.

    With `mask`, only the mask's entries are trained (subnetwork finetuning). Returns a summary.
    """
    torch.manual_seed(spec.seed)
    model, tokenizer = load_checkpoint(start, spec.precision)
    # DPO trains on its pairs only: its train split is neither read nor checked (with `pairs: dataset` the
    # two are the same file).
    train_df, dropped = (None, 0) if spec.algorithm == "dpo" else _within_lengths(
        spec, tokenizer, pd.read_parquet(train_data), spec.algorithm)
    pairs_df, dropped_pairs = (None, 0) if pairs is None else _within_lengths(
        spec, tokenizer, pd.read_parquet(pairs), "dpo")
    callbacks = []
    subnet = None
    if mask is not None:
        subnet = SubnetworkMask(model, MaskFile(mask))
        callbacks.append(subnet)
    with tempfile.TemporaryDirectory(prefix="subnet-rl-trainer-") as scratch:
        trainer = build_trainer(spec, model, tokenizer, train_df, pairs_df, scratch, callbacks)
        trainer.train()
        model = trainer.model
    # Trainers may upcast; store in the run's precision so diffs see what training produced.
    model = model.to(PRECISIONS[spec.precision])
    summary = {
        "run": spec.as_dict(),
        "dropped_overlong": {"train": dropped, "pairs": dropped_pairs},
        "environment": environment(trainer.args, spec),
        "subnetwork": None if subnet is None else {"trainable": subnet.trainable, "total": subnet.total},
        "log_history": trainer.state.log_history,
    }
    if trainer.is_world_process_zero():  # under `accelerate launch`, one process writes the checkpoint
        save_checkpoint(model, tokenizer, out_dir, extra_json={"training.json": summary})
    return summary
