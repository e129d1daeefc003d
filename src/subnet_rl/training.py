"""RL, preference and SFT training with TRL trainers (the `algorithms` registry), optionally on a subnetwork.

The reward is the run's dataset task's (`tasks`), and prompts keep their format (plain text or
conversations) all the way to TRL, which applies the chat template itself.
"""

from __future__ import annotations

import os
import platform
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch
from transformers import TrainerCallback

from .algorithms import get_algorithm, trl_trainer
from .config import RunSpec
from .lengths import Lengths, fit_run, has_auto_lengths, with_lengths
from .masks import MaskFile
from .models import PRECISIONS, load_checkpoint, save_checkpoint
from .step_sparsity import StepSparsity, compared_names
from .step_sparsity_records import FILE as STEP_SPARSITY_FILE
from .subnetwork import SubnetworkMask

#: folder of a run's checkpoint holding its intermediate snapshots (`save_every`).
SNAPSHOTS = "snapshots"


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


#: `optimizer` -> TrainingArguments.optim, for the optimizers that are not the Trainer's default. `adamw` passes
#: nothing: the Trainer's default is torch's AdamW (fused from torch 2.8, "adamw_torch_fused"), so runs keep
#: exactly the arguments they had before the setting existed. "sgd" is torch.optim.SGD with the Trainer's
#: lr and weight-decay groups and torch's defaults: no momentum, dampening or Nesterov (no `optim_args`).
TRAINER_OPTIM = {"sgd": "sgd"}


def optimizer_args(optimizer: str) -> dict:
    """The TrainingArguments that choose the run's optimizer (none for the default AdamW)."""
    return {"optim": TRAINER_OPTIM[optimizer]} if optimizer in TRAINER_OPTIM else {}


def _common_args(spec: RunSpec, output_dir: str) -> dict:
    """The TrainingArguments every algorithm's TRL config gets, from the run's shared `TrainingSpec`."""
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
        # save_steps: the Trainer's resumable checkpoints (weights, optimizer, scheduler, RNG); two kept, so
        # a kill while one is written leaves the previous one.
        save_strategy="steps" if spec.save_steps else "no",
        save_steps=spec.save_steps or 500,
        save_total_limit=2,
        report_to=list(spec.report_to) or "none",
        run_name=spec.name,
        disable_tqdm=True,
        dataloader_num_workers=0,
        full_determinism=spec.deterministic,
        **optimizer_args(spec.optimizer),
        **hardware_args(spec.autocast),
    )


def build_trainer(spec: RunSpec, model, tokenizer, data: pd.DataFrame, output_dir: str, callbacks: list):
    """The run's TRL trainer (from the algorithm registry) on its data: prompts, pairs or answers. A length
    still `auto` (`train` resolves them first) is measured from `data` here: TRL gets tokens."""
    if has_auto_lengths(spec):
        spec = with_lengths(spec, fit_run(spec, tokenizer, data)[2])
    return trl_trainer(spec, model, tokenizer, data, _common_args(spec, output_dir), callbacks)


class StepSnapshots(TrainerCallback):
    """Save the model every `every` optimizer steps (training dynamics, paper section 6).

    Snapshots are whole checkpoints (safetensors + config), so the diff engine reads them like any other;
    the final step is the run's checkpoint itself and is not saved twice. Runs after the subnetwork
    callback, so a snapshot holds the restored frozen entries.
    """

    def __init__(self, every: int, folder: Path):
        self.every, self.folder = every, folder

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        if step % self.every == 0 and step < state.max_steps and state.is_world_process_zero:
            model.save_pretrained(self.folder / snapshot_name(step), safe_serialization=True)


def snapshot_name(step: int) -> str:
    return f"step-{step:06d}"


def _fit_lengths(spec: RunSpec, tokenizer, df: pd.DataFrame) -> tuple[pd.DataFrame, int, Lengths]:
    """The run's training rows within its lengths, and the lengths it trains with (`auto` measured here),
    said in the job's log."""
    kept, dropped, lengths = fit_run(spec, tokenizer, df)
    if dropped:
        print(f"drop_overlong: dropped {dropped} of {len(df)} rows of {spec.dataset!r} over the length limits "
              f"(max_prompt_length={spec.max_prompt_length}, max_length={spec.max_length})")
    data = get_algorithm(spec.algorithm).data
    print(f"run {spec.name}: {lengths.describe(len(kept), spec.dataset, data, spec.algorithm)}", flush=True)
    return kept, dropped, lengths


def train(spec: RunSpec, start: str | os.PathLike, train_data: str | os.PathLike, out_dir: str | os.PathLike,
          pairs: str | os.PathLike | None = None, mask: str | os.PathLike | None = None,
          trainer_dir: str | os.PathLike | None = None, resume_from: str | None = None) -> dict:
    """Train `spec` from the `start` checkpoint and save the result (atomically) to `out_dir`.

    With `mask`, only the mask's entries are trained (subnetwork finetuning). `trainer_dir` keeps the
    Trainer's own folder (its `save_steps` checkpoints, snapshots) past a kill; `resume_from` is one of its
    checkpoints to continue from (see `resume`). With `spec.step_sparsity` the checkpoint also holds
    step_sparsity.parquet (see `step_sparsity`). Returns a summary.
    """
    torch.manual_seed(spec.seed)
    model, tokenizer = load_checkpoint(start, spec.precision)
    # Preference algorithms train on their pairs only: the train split is neither read nor checked (with
    # `pairs: dataset` the two are the same file).
    algorithm = get_algorithm(spec.algorithm)
    if algorithm.reads_pairs and pairs is None:
        raise ValueError(f"run {spec.name}: {spec.algorithm} needs preference pairs (prompt, chosen, rejected)")
    data, dropped, lengths = _fit_lengths(spec, tokenizer, pd.read_parquet(pairs if algorithm.reads_pairs
                                                                           else train_data))
    trained = with_lengths(spec, lengths)  # TRL's config gets the lengths in tokens, `auto` resolved
    callbacks = []
    subnet = None
    if mask is not None:
        subnet = SubnetworkMask(model, MaskFile(mask))
        callbacks.append(subnet)
    with _trainer_folder(trainer_dir) as scratch:
        snapshots = Path(scratch) / "snapshots"
        if spec.save_every and mask is None:
            callbacks.append(StepSnapshots(spec.save_every, snapshots))
        sparsity = None
        if spec.step_sparsity:  # counts at step end: after the subnetwork callback restored frozen entries
            sparsity = StepSparsity(compared_names(start))
            if resume_from is not None:
                sparsity.resume(resume_from)
            callbacks.append(sparsity)
        trainer = build_trainer(trained, model, tokenizer, data, str(scratch), callbacks)
        trainer.train(resume_from_checkpoint=resume_from)
        dtype = PRECISIONS[spec.precision]
        state = None
        if getattr(trainer, "is_fsdp_enabled", False):
            # FSDP2: every rank takes part in gathering the full weights (FULL_STATE_DICT); rank 0 writes
            # the same safetensors checkpoint as an unsharded run.
            state = trainer.accelerator.get_state_dict(trainer.model)
            state = {k: v.to(dtype) for k, v in state.items()} if trainer.is_world_process_zero() else None
            model = trainer.accelerator.unwrap_model(trainer.model)
        else:
            # Trainers may upcast; store in the run's precision so diffs see what training produced.
            model = trainer.model.to(dtype)
        summary = _summary(spec, trainer, subnet, dropped, lengths)
        if trainer.is_world_process_zero():  # under `accelerate launch`, one process writes the checkpoint
            save_checkpoint(model, tokenizer, out_dir, extra_json={"training.json": summary},
                            extra_dirs={SNAPSHOTS: snapshots} if snapshots.is_dir() else None, state_dict=state,
                            extra_parquet={STEP_SPARSITY_FILE: sparsity.frame()} if sparsity else None)
    return summary


@contextmanager
def _trainer_folder(kept: str | os.PathLike | None) -> Iterator[Path]:
    """The Trainer's output folder: the job's resume folder when it has one, else a scratch folder."""
    if kept is not None:
        Path(kept).mkdir(parents=True, exist_ok=True)
        yield Path(kept)
        return
    with tempfile.TemporaryDirectory(prefix="subnet-rl-trainer-") as scratch:
        yield Path(scratch)


def _summary(spec: RunSpec, trainer, subnet: SubnetworkMask | None, dropped: int, lengths: Lengths) -> dict:
    summary = {
        "run": spec.as_dict(),  # as configured (`auto` lengths included); `lengths` says what they were
        "dropped_overlong": dropped,
        "lengths": lengths.record(),
        "environment": {**environment(trainer.args, spec), "sharding": "fsdp2" if getattr(trainer, "is_fsdp_enabled", False)
                        else "ddp" if trainer.args.world_size > 1 else "none"},
        "subnetwork": None if subnet is None else {"trainable": subnet.trainable, "total": subnet.total,
                                                   "mask_state_bytes": subnet.state_bytes()},
        "log_history": trainer.state.log_history,
    }
    return summary
