"""What to change when a job's memory plan exceeds gpu_mem_gb (each change recomputed, not guessed), and
the refusal that names them."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..settings import GroupSampling
from .jobs import RunPlan, plan_job, plan_run
from .report import gb, job_key, largest_terms
from .terms import GiB

if TYPE_CHECKING:
    from ..config import RunSpec


class PlanError(ValueError):
    """A training job whose memory plan exceeds resources.train.gpu_mem_gb."""


def _replanned(plan: RunPlan, **changes) -> RunPlan:
    spec = plan.spec.replaced(**{k: v for k, v in changes.items() if k not in ("gpus", "nodes")})
    return plan_run(spec, plan.shape, gpus=changes.get("gpus", plan.gpus), nodes=changes.get("nodes", plan.nodes),
                    gpu_mem_gb=plan.gpu_mem_gb, subnetwork=plan.variant == "subnet", variant=plan.variant,
                    model=plan.model)


def _fits(plan: RunPlan, sharding: str | None = None) -> bool:
    terms = plan.by_sharding[sharding or plan.chosen]
    return terms.total <= (plan.gpu_mem_gb or 0) * GiB


def fixes(plan: RunPlan) -> list[str]:
    """Changes that each alone bring the plan within gpu_mem_gb (recomputed, not guessed)."""
    where = job_key(plan)
    out = []
    if plan.chosen == "ddp" and plan.world > 1 and _fits(plan, "fsdp2"):
        out.append(f"sharding: fsdp2 (`{where}.sharding` or `training.sharding`; auto does this)")
    sharded = "fsdp2" if plan.sharding != "ddp" else None
    for gpus, nodes in _more_gpus(plan.gpus, plan.nodes):
        more = _replanned(plan, gpus=gpus, nodes=nodes)
        if _fits(more, sharded or "fsdp2"):
            out.append(f"more GPUs: resources.train.gpu: {gpus}" + (f", nodes: {nodes}" if nodes > 1 else "")
                       + f" ({gpus * nodes} GPUs, FSDP2: {gb(more.by_sharding['fsdp2'].total)} GB per GPU"
                       + (", with sharding: fsdp2 or auto)" if plan.sharding == "ddp" else ")"))
            break
    if not plan.spec.gradient_checkpointing and _fits(_replanned(plan, gradient_checkpointing=True)):
        out.append(f"gradient_checkpointing: true (`{where}.gradient_checkpointing`)")
    batch, accumulation = plan.spec.batch_size, plan.spec.gradient_accumulation_steps
    sampling = isinstance(plan.spec.settings, GroupSampling)
    for smaller in range(batch - 1, 0, -1):
        scaled = math.ceil(batch * accumulation / smaller)
        options = [scaled, accumulation] if sampling else [scaled]
        found = next((a for a in dict.fromkeys(options)
                      if _fits(_replanned(plan, batch_size=smaller, gradient_accumulation_steps=a))), None)
        if found is None:
            continue
        if found != accumulation:
            note = f" (gradient_accumulation_steps: {found} keeps the effective batch)"
        elif sampling:
            note = (" (a smaller effective batch: TRL samples batch_size x num_generations x "
                    "gradient_accumulation_steps completions at once)")
        else:
            note = ""
        out.append(f"batch_size: {smaller}{note} (`{where}.batch_size`)")
        break
    terms = plan.terms
    if terms is not None and terms.generation > terms.activations + terms.logits:
        out.append("the generation cache (batch_size x num_generations x gradient_accumulation_steps completions of "
                   "max_prompt_length + max_new_tokens tokens): fewer of them, or shorter")
    return out


def _more_gpus(gpus: int, nodes: int) -> Iterable[tuple[int, int]]:
    """Bigger jobs to try: more GPUs on each node (up to 8), then more nodes of at least 8 (up to 64)."""
    for more in range(max(1, gpus) + 1, 9):
        yield more, nodes
    for more_nodes in range(nodes + 1, 65):
        yield max(8, gpus), more_nodes


def refusal(plan: RunPlan) -> str:
    """Why the job cannot run, and what to change."""
    terms = plan.terms
    assert terms is not None and plan.gpu_mem_gb is not None
    largest = largest_terms(terms, 4)
    options = fixes(plan) or [("none of sharding, more GPUs, gradient checkpointing or a smaller batch fits alone: "
                               "combine them, or use GPUs with more memory (precision: bf16 halves weights, "
                               "gradients and optimizer states, and changes what sparsity means)")]
    return (f"{job_key(plan)} ({plan.variant} training): memory plan {gb(terms.total)} GB per GPU > "
            f"resources.train.gpu_mem_gb {plan.gpu_mem_gb:g} ({plan.chosen}, {plan.world} GPU(s); largest: "
            + ", ".join(f"{k} {gb(v)}" for v, k in largest) + "). Change one of: " + "; ".join(options)
            + ". `subnet-rl plan --configfile <file>` shows every term" + _assumed_note(plan))


def _assumed_note(plan: RunPlan) -> str:
    """A refusal made at an assumed length says so, and how to plan with the data's own."""
    if not plan.assumed:
        return ""
    lengths = ", ".join(f"{key} {value}" for key, value in plan.assumed.items())
    keys = " / ".join(f"`{job_key(plan)}.{key}`" for key in plan.assumed)
    return (f". Planned at an assumed {lengths} tokens: {keys} is `auto` (measured from the data only when the "
            "job starts); set it to your data's length in tokens to plan with that")


def check_plans(plans: Iterable[RunPlan]) -> None:
    """Raise PlanError naming every job whose plan exceeds its gpu_mem_gb, with what to change (jobs
    without gpu_mem_gb, or of a model whose shape is unknown, pass)."""
    too_big = [p for p in plans if p.fits is False]
    if too_big:
        raise PlanError("\n".join(refusal(p) for p in too_big))


def check_job(spec: RunSpec, start: str | os.PathLike, settings: Mapping[str, Any], mask: bool = False) -> RunPlan:
    """`plan_job`, refused with PlanError (naming what to change) when it exceeds gpu_mem_gb: the check of
    a job whose model was not on disk when the workflow started."""
    plan = plan_job(spec, start, settings, mask)
    check_plans([plan])
    return plan
