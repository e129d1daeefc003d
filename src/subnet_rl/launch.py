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
from pathlib import Path

from .config import RunSpec

PathLike = str | os.PathLike


def _free_port() -> int:
    """A free TCP port for the processes' rendezvous (two multi-GPU jobs on one node must not collide)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch_command(processes: int, spec_file: PathLike, start: PathLike, train_data: PathLike, out_dir: PathLike,
                   pairs: PathLike | None = None, mask: PathLike | None = None) -> list[str]:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), "-m", "subnet_rl.launch",
               "--spec", str(spec_file), "--start", str(start), "--train", str(train_data), "--out", str(out_dir)]
    command += ["--pairs", str(pairs)] if pairs else []
    command += ["--mask", str(mask)] if mask else []
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
              mask: PathLike | None = None, processes: int = 1, cpu_processes: bool = False) -> None:
    """Train in this process (processes <= 1) or in `processes` DDP processes started by accelerate.

    `processes` is the job's GPU count; more than the machine shows is an error unless `cpu_processes`."""
    check_gpus(processes, cpu_processes)
    if processes <= 1:
        from .training import train

        train(spec, start, train_data, out_dir, pairs=pairs, mask=mask)
        return
    with tempfile.TemporaryDirectory(prefix="subnet-rl-launch-") as scratch:
        spec_file = Path(scratch) / "spec.json"
        spec_file.write_text(json.dumps(spec.as_dict()))
        command = launch_command(processes, spec_file, start, train_data, out_dir, pairs, mask)
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
    args = parser.parse_args(argv)
    from .training import train

    spec = RunSpec(**json.loads(Path(args.spec).read_text()))
    train(spec, args.start, args.train, args.out, pairs=args.pairs, mask=args.mask)


if __name__ == "__main__":
    main()
