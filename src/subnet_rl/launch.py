"""One training job on one device or, under `accelerate launch`, on several (DDP, one process each).

The workflow asks for `resources.train.gpu` GPUs; with more than one it starts this module under
`accelerate launch --multi_gpu --num_processes N`, each process trains its share of every batch and the
first one writes the checkpoint. On a machine without GPUs the same launch runs N CPU processes (gloo)
only when `resources.train.cpu_processes` asks for it, which is how it is tested. FSDP and ZeRO-3 are refused for subnetwork runs (see `subnetwork`).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import resume
from .config import RunSpec

PathLike = str | os.PathLike


def _free_port() -> int:
    """A free TCP port for the processes' rendezvous (two multi-GPU jobs on one node must not collide)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_command(processes: int, spec_file: PathLike, start: PathLike, train_data: PathLike, out_dir: PathLike,
                   pairs: PathLike | None = None, mask: PathLike | None = None, trainer_dir: PathLike | None = None,
                   resume_from: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), "-m", "subnet_rl.launch",
               "--spec", str(spec_file), "--start", str(start), "--train", str(train_data), "--out", str(out_dir)]
    command += ["--pairs", str(pairs)] if pairs else []
    command += ["--mask", str(mask)] if mask else []
    command += ["--trainer-dir", str(trainer_dir)] if trainer_dir else []
    command += ["--resume-from", str(resume_from)] if resume_from else []
    return command


def check_gpus(asked: int, cpu_processes: bool = False, available: int | None = None) -> None:
    """Refuse a job that asks for more GPUs than this machine shows, unless CPU processes were asked for.

    Without the check, `gpu: 2` on a machine without GPUs trains two CPU processes without a word, and
    (measured) 98% of the weights end up different from the one-process run the user thought they had.
    """
    if asked <= 0 or cpu_processes:
        return
    if available is None:
        import torch

        available = torch.cuda.device_count()
    if asked > available:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise RuntimeError(
            f"resources.train.gpu asks for {asked} GPU(s) and this machine shows {available}"
            + (f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else "")
            + ": run where the GPUs are (e.g. `--profile slurm`), ask for fewer, or set "
            "`resources.train.cpu_processes: true` to train in that many CPU processes (gloo) on purpose")


def train_job(spec: RunSpec, start: PathLike, train_data: PathLike, out_dir: PathLike, pairs: PathLike | None = None,
              mask: PathLike | None = None, processes: int = 0, cpu_processes: bool = False,
              resume_dir: PathLike | None = None, tracking_dir: PathLike | None = None) -> None:
    """Train in this process (processes <= 1) or in `processes` DDP processes started by accelerate.

    `processes` is the job's GPU count; more than the machine shows is an error unless `cpu_processes`.
    With `spec.save_steps`, `resume_dir` holds the Trainer's checkpoints: a rerun after a kill continues
    from the newest, and the folder is removed once the final checkpoint is in place. Trackers
    (`spec.report_to`) write under `tracking_dir`.
    """
    check_gpus(processes, cpu_processes)
    trainer_dir = Path(resume_dir) if resume_dir is not None and spec.save_steps else None
    resume_from = None
    if trainer_dir is not None:
        job = resume.fingerprint(spec.as_dict(), [start, train_data, pairs, mask])
        resume_from = resume.prepare(trainer_dir, job)
    with _tracking_environment(tracking_dir if spec.report_to else None):
        _train(spec, start, train_data, out_dir, pairs, mask, processes, trainer_dir, resume_from)
    if trainer_dir is not None:
        resume.finish(trainer_dir)


@contextmanager
def _tracking_environment(folder: PathLike | None) -> Iterator[None]:
    """Trackers' files under `folder` (TensorBoard's event files, wandb's offline runs), for this job only."""
    if folder is None:
        yield
        return
    path = str(Path(folder).resolve())
    saved = {key: os.environ.get(key) for key in ("TENSORBOARD_LOGGING_DIR", "WANDB_DIR", "TRACKIO_DIR")}
    os.environ.update({key: path for key in saved})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _train(spec: RunSpec, start: PathLike, train_data: PathLike, out_dir: PathLike, pairs: PathLike | None,
           mask: PathLike | None, processes: int, trainer_dir: Path | None, resume_from: str | None) -> None:
    if processes <= 1:
        from .training import train

        train(spec, start, train_data, out_dir, pairs=pairs, mask=mask, trainer_dir=trainer_dir,
              resume_from=resume_from)
    else:
        with tempfile.TemporaryDirectory(prefix="subnet-rl-launch-") as scratch:
            spec_file = Path(scratch) / "spec.json"
            spec_file.write_text(json.dumps(spec.as_dict()))
            command = launch_command(processes, spec_file, start, train_data, out_dir, pairs, mask,
                                     trainer_dir, resume_from)
            print("launching:", " ".join(command), flush=True)
            done = subprocess.run(command, stdout=sys.stdout, stderr=sys.stderr)
        if done.returncode != 0:
            raise RuntimeError(f"run {spec.name}: `accelerate launch` with {processes} processes failed "
                               f"(exit {done.returncode}); the traceback of the failing process is above")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one process of a multi-process training job")
    for flag in ("--spec", "--start", "--train", "--out"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--pairs")
    parser.add_argument("--mask")
    parser.add_argument("--trainer-dir")
    parser.add_argument("--resume-from")
    args = parser.parse_args(argv)
    from .training import train

    spec = RunSpec(**json.loads(Path(args.spec).read_text()))
    train(spec, args.start, args.train, args.out, pairs=args.pairs, mask=args.mask, trainer_dir=args.trainer_dir,
          resume_from=args.resume_from)


if __name__ == "__main__":
    main()
