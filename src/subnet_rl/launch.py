"""One training job: in this process, or under `accelerate launch` on several GPUs and nodes.

The workflow asks for `resources.train.gpu` GPUs per node on `resources.train.nodes` nodes:
- one process (no GPU, or one GPU with DDP): `training.train` runs here;
- several GPUs on one node, or FSDP2 on any number: this module is started under `accelerate launch`,
  each process trains its share of every batch, and the first one writes the checkpoint. `sharding`
  chooses DDP (`--multi_gpu`) or FSDP2 (`--use_fsdp --fsdp_version 2`, the model's decoder layers
  wrapped, the full state dict gathered to rank 0 for the usual safetensors checkpoint);
- several nodes: `srun` starts one `python -m subnet_rl.launch node ...` per node of the Slurm allocation,
  and each starts `accelerate launch` as machine rank `$SLURM_NODEID`, meeting at the first host of the
  job's node list on a port chosen free there.
On a machine without GPUs the same launches run CPU processes (gloo) only when
`resources.train.cpu_processes` asks for it, which is how they are tested. accelerate turns FSDP on only
for GPUs, so on CPU `fsdp2` falls back to DDP inside accelerate (see README: what was not run here).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import resume
from .config import RunSpec
from .settings import SHARDINGS

PathLike = str | os.PathLike


@dataclass(frozen=True)
class Launch:
    """Where a job's processes run: GPUs per node (0: the CPU), nodes, and how the model is spread."""

    gpus: int = 0
    nodes: int = 1
    sharding: str = "ddp"          # resolved: ddp | fsdp2
    cpu_processes: bool = False    # more processes than GPUs on purpose (gloo on CPU; tests)

    def __post_init__(self):
        if self.sharding not in SHARDINGS:
            raise ValueError(f"sharding {self.sharding!r} is not resolved; use one of {SHARDINGS}")
        if self.nodes < 1:
            raise ValueError("resources.train.nodes must be at least 1")

    @property
    def processes_per_node(self) -> int:
        return max(1, self.gpus)

    @property
    def world_size(self) -> int:
        return self.processes_per_node * self.nodes

    @property
    def in_process(self) -> bool:
        """One process and nothing to shard: no launcher needed."""
        return self.world_size == 1 and self.sharding == "ddp"


def launch_of(spec: RunSpec, start: PathLike, settings: dict, mask: bool = False,
              data: PathLike | None = None) -> Launch:
    """The job's launch from `resources.train` (gpus, nodes, cpu_processes, gpu_mem_gb) and the run's
    `sharding`; `auto` is FSDP2 when the memory plan says one DDP replica does not fit `gpu_mem_gb`.

    With `gpu_mem_gb`, the job is planned again from its start checkpoint as fetched (the workflow's
    plan at start-up may not have known a hub model's shape) and from its training `data`'s lengths where
    they are `auto` (the workflow's plan assumed them), and refused, naming what to change, when it
    cannot fit. `mask`: a subnetwork job (its masks count)."""
    sharding = "ddp" if spec.sharding == "auto" else spec.sharding
    if settings.get("gpu_mem_gb") is not None:
        from .lengths import measured_spec
        from .plan import PlanError, check_job

        planned = spec if data is None else measured_spec(spec, start, data)
        try:
            sharding = check_job(planned, start, settings, mask=mask).chosen
        except PlanError as refused:
            measured = ", ".join(f"{k} {v}" for k, v in planned.as_dict().items() if v != spec.as_dict()[k])
            raise (PlanError(f"{refused}. Planned with the `auto` lengths measured from {data}: {measured} tokens")
                   if measured else refused) from None
    return Launch(gpus=settings["gpus"], nodes=settings["nodes"], sharding=sharding,
                  cpu_processes=settings["cpu_processes"])


def free_port() -> int:
    """A free TCP port for the processes' rendezvous (two multi-GPU jobs on one node must not collide)."""
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def decoder_layer_classes(start: PathLike) -> str:
    """The class names FSDP2 wraps one by one: the model's `_no_split_modules` (its decoder layer)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(start)
    model_class = AutoModelForCausalLM._model_mapping[type(config)]
    layers = list(getattr(model_class, "_no_split_modules", None) or [])
    if not layers:
        raise ValueError(f"{start}: {model_class.__name__} names no decoder layer class (_no_split_modules); "
                         "FSDP2 cannot wrap it layer by layer: use sharding: ddp")
    return ",".join(layers)


def accelerate_command(launch: Launch, train_args: Sequence[str], machine_rank: int = 0,
                       main_address: str = "127.0.0.1", port: int | None = None,
                       layer_classes: str | None = None) -> list[str]:
    """`accelerate launch` of this module's `train` entry on one machine (node) of the job."""
    command = [sys.executable, "-m", "accelerate.commands.launch",
               "--num_processes", str(launch.world_size), "--num_machines", str(launch.nodes),
               "--machine_rank", str(machine_rank), "--main_process_ip", main_address,
               "--main_process_port", str(port or free_port()),
               "--mixed_precision", "no", "--dynamo_backend", "no"]
    if launch.sharding == "fsdp2":
        command += ["--use_fsdp", "--fsdp_version", "2", "--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP",
                    "--fsdp_transformer_layer_cls_to_wrap", layer_classes or "",
                    "--fsdp_state_dict_type", "FULL_STATE_DICT", "--fsdp_reshard_after_forward", "true"]
    else:
        command += ["--multi_gpu"]
    return [*command, "-m", "subnet_rl.launch", "train", *train_args]


def first_host() -> str:
    """The first host of the Slurm allocation (where machine rank 0 runs and the batch script runs)."""
    nodelist = os.environ.get("SLURM_JOB_NODELIST") or os.environ.get("SLURM_NODELIST")
    if nodelist and shutil.which("scontrol"):
        shown = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True)
        if shown.returncode == 0 and shown.stdout.split():
            return shown.stdout.split()[0]
    return socket.gethostname()


def srun_command(launch: Launch, train_args: Sequence[str], main_address: str, port: int,
                 layer_classes: str | None) -> list[str]:
    """One node launcher per node of the allocation, each becoming machine rank $SLURM_NODEID."""
    node = [sys.executable, "-m", "subnet_rl.launch", "node", "--gpus", str(launch.gpus), "--nodes", str(launch.nodes),
            "--sharding", launch.sharding, "--main-address", main_address, "--main-port", str(port)]
    node += ["--layer-classes", layer_classes] if layer_classes else []
    node += ["--cpu-processes"] if launch.cpu_processes else []
    return ["srun", "--nodes", str(launch.nodes), "--ntasks", str(launch.nodes), "--ntasks-per-node", "1",
            "--kill-on-bad-exit=1", "--export=ALL", *node, "--", *train_args]


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


def job_folders(out_dir: PathLike) -> dict[str, Path]:
    """`train_job`'s folders beside a workflow checkpoint results/checkpoints/<variant>/<name>: its resume
    folder (results/resume/<variant>/<name>) and tracker logs (results/tracking/<variant>/<name>)."""
    where = Path(out_dir).relative_to("results/checkpoints")
    return {"resume_dir": Path("results/resume") / where, "tracking_dir": Path("results/tracking") / where}


def train_job(spec: RunSpec, start: PathLike, train_data: PathLike, out_dir: PathLike, pairs: PathLike | None = None,
              mask: PathLike | None = None, processes: int = 0, cpu_processes: bool = False,
              resume_dir: PathLike | None = None, tracking_dir: PathLike | None = None,
              launch: Launch | None = None) -> None:
    """Train in this process, or under accelerate as `launch` says (by default `processes` GPUs, DDP).

    More GPUs than the machine shows is an error unless `cpu_processes`. With `spec.save_steps`,
    `resume_dir` holds the Trainer's checkpoints: a rerun after a kill continues from the newest, and the
    folder is removed once the final checkpoint is in place. Trackers (`spec.report_to`) write under
    `tracking_dir`.
    """
    launch = launch or Launch(gpus=processes, cpu_processes=cpu_processes)
    check_gpus(launch.gpus, launch.cpu_processes)
    trainer_dir = Path(resume_dir) if resume_dir is not None and spec.save_steps else None
    resume_from = None
    if trainer_dir is not None:
        job = resume.fingerprint(spec.as_dict(), [start, train_data, pairs, mask])
        resume_from = resume.prepare(trainer_dir, job)
    with _tracking_environment(tracking_dir if spec.report_to else None):
        if launch.in_process:
            from .training import train

            train(spec, start, train_data, out_dir, pairs=pairs, mask=mask, trainer_dir=trainer_dir,
                  resume_from=resume_from)
        else:
            _launch(spec, launch, start, train_data, out_dir, pairs, mask, trainer_dir, resume_from)
    if trainer_dir is not None:
        resume.finish(trainer_dir)


def _launch(spec: RunSpec, launch: Launch, start: PathLike, train_data: PathLike, out_dir: PathLike,
            pairs: PathLike | None, mask: PathLike | None, trainer_dir: Path | None, resume_from: str | None) -> None:
    layers = decoder_layer_classes(start) if launch.sharding == "fsdp2" else None
    # The spec file must be readable from every node: beside the output (a shared file system), not /tmp.
    Path(out_dir).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{Path(out_dir).name}.launch.", dir=Path(out_dir).parent) as scratch:
        spec_file = Path(scratch) / "spec.json"
        spec_file.write_text(json.dumps(spec.as_dict()))
        args = ["--spec", str(spec_file), "--start", str(start), "--train", str(train_data), "--out", str(out_dir)]
        args += ["--pairs", str(pairs)] if pairs else []
        args += ["--mask", str(mask)] if mask else []
        args += ["--trainer-dir", str(trainer_dir)] if trainer_dir else []
        args += ["--resume-from", str(resume_from)] if resume_from else []
        if launch.nodes > 1:
            if "SLURM_JOB_ID" not in os.environ:
                raise RuntimeError(f"run {spec.name}: resources.train.nodes is {launch.nodes}, which needs a Slurm "
                                   "allocation of that many nodes (`snakemake --profile slurm`); set nodes: 1 to "
                                   "train on this machine")
            command = srun_command(launch, args, first_host(), free_port(), layers)
        else:
            command = accelerate_command(launch, args, layer_classes=layers)
        print("launching:", " ".join(command), flush=True)
        done = subprocess.run(command, stdout=sys.stdout, stderr=sys.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"run {spec.name}: {launch.world_size} training processes ({launch.sharding}, "
                           f"{launch.nodes} node(s)) failed (exit {done.returncode}); the traceback of the failing "
                           "process is above")


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


def _train_entry(argv: Sequence[str]) -> None:
    """One training process (started by accelerate)."""
    parser = argparse.ArgumentParser(prog="subnet_rl.launch train")
    for flag in ("--spec", "--start", "--train", "--out"):
        parser.add_argument(flag, required=True)
    for flag in ("--pairs", "--mask", "--trainer-dir", "--resume-from"):
        parser.add_argument(flag)
    args = parser.parse_args(argv)
    from .training import train

    spec = RunSpec.from_dict(json.loads(Path(args.spec).read_text()))
    train(spec, args.start, args.train, args.out, pairs=args.pairs, mask=args.mask, trainer_dir=args.trainer_dir,
          resume_from=args.resume_from)


def _node_entry(argv: Sequence[str]) -> None:
    """One node of a multi-node job (started by srun): accelerate launch as this node's machine rank."""
    parser = argparse.ArgumentParser(prog="subnet_rl.launch node")
    parser.add_argument("--gpus", type=int, required=True)
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--sharding", choices=SHARDINGS, required=True)
    parser.add_argument("--main-address", required=True)
    parser.add_argument("--main-port", type=int, required=True)
    parser.add_argument("--layer-classes")
    parser.add_argument("--cpu-processes", action="store_true")
    parser.add_argument("--machine-rank", type=int, help="default: $SLURM_NODEID")
    parser.add_argument("train_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    rank = args.machine_rank if args.machine_rank is not None else int(os.environ["SLURM_NODEID"])
    launch = Launch(gpus=args.gpus, nodes=args.nodes, sharding=args.sharding, cpu_processes=args.cpu_processes)
    check_gpus(launch.gpus, launch.cpu_processes)
    train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    command = accelerate_command(launch, train_args, rank, args.main_address, args.main_port, args.layer_classes)
    print(f"node {rank}: launching:", " ".join(command), flush=True)
    sys.exit(subprocess.run(command).returncode)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    entries = {"train": _train_entry, "node": _node_entry}
    if not argv or argv[0] not in entries:
        raise SystemExit(f"usage: python -m subnet_rl.launch {{{'|'.join(entries)}}} ...")
    entries[argv[0]](argv[1:])


if __name__ == "__main__":
    main()
