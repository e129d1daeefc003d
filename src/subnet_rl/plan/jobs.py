"""The plan of each training job of a config: its model's shape, both shardings, and the one it runs with."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..settings import SHARDINGS
from .shapes import ModelShape, model_shape, shape_from_checkpoint
from .terms import GiB, Terms, assumed_lengths, plan_terms

if TYPE_CHECKING:
    from ..config import RunSpec


@dataclass(frozen=True)
class RunPlan:
    """The plan of one training job: both shardings, and the one it runs with."""

    run: str
    variant: str                     # full | subnet (also the random-mask controls) | warmup
    spec: RunSpec
    gpus: int                        # per node (0: the CPU)
    nodes: int
    sharding: str                    # as configured: auto | ddp | fsdp2
    gpu_mem_gb: float | None
    shape: ModelShape | None
    by_sharding: dict[str, Terms] = field(default_factory=dict)
    model: str = "start"

    @property
    def world(self) -> int:
        return max(1, self.gpus) * self.nodes

    @property
    def device(self) -> str:
        return "gpu" if self.gpus > 0 else "cpu"

    @property
    def known(self) -> bool:
        return self.shape is not None

    @property
    def assumed(self) -> dict[str, int]:
        """The length planned with for a setting that is `auto` (measured when the job starts), if any."""
        return assumed_lengths(self.spec)

    @property
    def chosen(self) -> str:
        """The sharding the job runs with (auto resolved by `choose_sharding`)."""
        if self.sharding != "auto":
            return self.sharding
        return choose_sharding(self, self.gpu_mem_gb) if self.known else "ddp"

    @property
    def terms(self) -> Terms | None:
        return self.by_sharding.get(self.chosen)

    @property
    def total(self) -> int | None:
        return None if self.terms is None else self.terms.total

    @property
    def fits(self) -> bool | None:
        if self.total is None or self.gpu_mem_gb is None:
            return None
        return self.total <= self.gpu_mem_gb * GiB


def choose_sharding(plan: RunPlan, gpu_mem_gb: float | None) -> str:
    """`auto`: FSDP2 when one DDP replica does not fit `gpu_mem_gb` (and there is more than one GPU to
    shard over), else DDP. Pure: reads the plan's DDP total."""
    if plan.world <= 1 or gpu_mem_gb is None or "ddp" not in plan.by_sharding:
        return "ddp"
    return "ddp" if plan.by_sharding["ddp"].total <= gpu_mem_gb * GiB else "fsdp2"


def plan_run(spec: RunSpec, shape: ModelShape | None, *, gpus: int = 0, nodes: int = 1, gpu_mem_gb: float | None = None,
             subnetwork: bool = False, variant: str | None = None, model: str | None = None) -> RunPlan:
    """Plan `spec` (both shardings) on `gpus` GPUs per node and `nodes` nodes."""
    world = max(1, gpus) * nodes
    device = "gpu" if gpus > 0 else "cpu"
    by_sharding = {} if shape is None else {
        s: plan_terms(spec, shape, world=world, sharding=s, subnetwork=subnetwork, device=device, gpu_mem_gb=gpu_mem_gb)
        for s in SHARDINGS}
    return RunPlan(run=spec.name, variant=variant or ("subnet" if subnetwork else "full"), spec=spec, gpus=gpus,
                   nodes=nodes, sharding=getattr(spec, "sharding", "auto"), gpu_mem_gb=gpu_mem_gb, shape=shape,
                   by_sharding=by_sharding, model=model or spec.model)


def plan_job(spec: RunSpec, start: str | os.PathLike, settings: Mapping[str, Any], mask: bool = False) -> RunPlan:
    """The launcher's plan of one job from its start checkpoint folder (config.json, safetensors headers)
    and `resources.train` as the workflow passes it (gpus, nodes, gpu_mem_gb). `mask`: a subnetwork job."""
    return plan_run(spec, shape_from_checkpoint(start), gpus=int(settings.get("gpus") or 0),
                    nodes=int(settings.get("nodes") or 1), gpu_mem_gb=settings.get("gpu_mem_gb"), subnetwork=mask)


def train_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """resources.train as the plan reads it: GPUs per node (0: CPU), nodes, gpu_mem_gb."""
    train = config.get("resources", {}).get("train", {})
    return {"gpus": int(train.get("gpu", 0)), "nodes": int(train.get("nodes", 1)),
            "gpu_mem_gb": train.get("gpu_mem_gb")}


def plan_config(config: Mapping[str, Any], root: str | os.PathLike = ".") -> list[RunPlan]:
    """Every training job of a validated config: the warmup, each run in full and, where `subnetwork`
    is set, its subnetwork run (the random-mask controls plan the same)."""
    from ..config import RunSpec, start_models, warmup_run

    settings = train_settings(config)
    models = start_models(config)
    shapes: dict[str, ModelShape | None] = {}

    def shape_of(key: str) -> ModelShape | None:
        if key not in shapes:
            shapes[key] = model_shape(key, models[key], root)
        return shapes[key]

    common = dict(gpus=settings["gpus"], nodes=settings["nodes"], gpu_mem_gb=settings["gpu_mem_gb"])
    plans = []
    warmup = config.get("model", {}).get("warmup")
    if warmup and config.get("runs"):
        plans.append(plan_run(warmup_run(warmup), shape_of("start"), variant="warmup", **common))
    for name in sorted(config.get("runs", {})):
        spec = RunSpec.from_config(dict(config), name)
        plans.append(plan_run(spec, shape_of(spec.model), **common))
        if spec.subnetwork:
            plans.append(plan_run(spec, shape_of(spec.model), subnetwork=True, **common))
    return plans
