"""Step-level sparsity (after PULSE, arXiv 2602.03839): at each optimizer step, how many parameter entries
changed their bf16 value in that step.

The diff stage measures one update, start to final; this measures every step's, as bf16 sees it: an
entry counts as changed in step t when its weight rounded to bf16 after step t differs, bit for bit, from
its weight rounded to bf16 after step t-1 (the `bf16_bitwise` criterion of the diff engine, applied to
consecutive steps: +0 vs -0 is a change, a NaN compares by its bits). With bf16 weights every stored
change is visible; with fp32 weights an update that stays within half a bf16 ulp of the rounded value
is not (the ulp account measures the whole run's update in those units).

The compared entries are the diff's (`diff.compared_params` of the start checkpoint: the parameters,
tied weights once), so a step's total is the diff table's. Memory: one bf16 copy of those parameters (2
bytes per entry, on each parameter's device; of the local shard under FSDP2), which the memory plan
counts, plus per-chunk temporaries at the end of the step, when the gradients are already freed.

It observes only: nothing it does touches the weights, the gradients or a random generator, so a run is
bit-identical with it on or off.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from .step_sparsity_records import records_frame
from .subnetwork import _is_dtensor, _local

#: entries compared at once: bounds the temporaries (a bf16 cast and a bool per entry) for any tensor size.
CHUNK = 1 << 24


def compared_names(start: str | os.PathLike) -> list[str]:
    """The parameters the diff stage compares for a run from `start` (its start checkpoint): the diff's own
    list, `diff.compared_params`.

    Imported by name, not by an import statement: a rule's code hash follows import statements
    (`code_version`), and the diff package's would make every edit of the diff kernel retrain every run.
    What the list depends on is checked where it matters instead: the step-sparsity tables hold each
    record's total against the run's diff table (`step_sparsity_table.read_records`).
    """
    pairing = importlib.import_module(f"{__package__}.diff.pairing")
    return [p.name for p in pairing.compared_params(start, start)]


@torch.no_grad()
def _count_and_update(param: torch.Tensor, copy: torch.Tensor) -> torch.Tensor:
    """Entries of `param` (local) whose bf16 bits differ from `copy`'s, as a 0-d int64 tensor on its device;
    `copy` then holds the new bf16 values."""
    flat, seen = param.detach().reshape(-1), copy.view(-1)
    changed = torch.zeros((), dtype=torch.int64, device=param.device)
    for begin in range(0, flat.numel(), CHUNK):
        now = flat[begin:begin + CHUNK].to(torch.bfloat16)
        before = seen[begin:begin + CHUNK]
        changed += (now.view(torch.int16) != before.view(torch.int16)).sum()
        before.copy_(now)
    return changed


class StepSparsity(TrainerCallback, ExportableState):
    """Record (step, changed, total) at every optimizer step: entries whose bf16 value changed in the step.

    Counts at `on_step_end`, after every callback's `on_optimizer_step` (the subnetwork callback's restore of
    frozen entries included) and once per optimizer step (global_step), whatever the gradient accumulation.
    Binds to the parameters by name at `on_train_begin`, as `SubnetworkMask` does (accelerate's FSDP2 wrap
    replaces them with DTensors), and takes its bf16 copy there, on each parameter's device.

    Several processes: an FSDP2 parameter (a DTensor sharded on a one-dimensional mesh) is counted on the
    local shard and the counts are summed over the mesh with one all_reduce per step (each entry lives on
    one rank); a plain parameter (one process, or a DDP replica, the same on every rank) is counted by
    each rank on its own copy and not summed, so no entry is counted twice.

    Resumable: the records are this callback's `ExportableState`, saved in each Trainer checkpoint's
    trainer_state.json; `resume` reads them back (the Trainer's own restore is off by default, and would
    replace this object), and `on_train_begin` checks they hold every step before the resumed one.
    """

    def __init__(self, names: list[str], records: list[list[int]] | None = None):
        if not names:
            raise ValueError("step_sparsity: the start checkpoint has no compared parameters to count")
        self.names = list(names)
        self.records: list[list[int]] = [list(r) for r in records or []]
        self._bound: list[tuple[torch.Tensor, torch.Tensor]] = []  # (parameter, bf16 copy of its local values)
        self.total = 0

    # -- binding and counting --------------------------------------------------------------------------
    def bind(self, model: torch.nn.Module) -> None:
        """Bind to `model`'s parameters as they are now and take the bf16 copy of their values."""
        params = dict(model.named_parameters())
        missing = [name for name in self.names if name not in params]
        if missing:
            raise ValueError(f"step_sparsity: the start checkpoint's tensor(s) {missing[:5]} are not parameters of "
                             "the loaded model, so their steps cannot be counted; set `step_sparsity: false` for "
                             "this run")
        self._bound = []
        for name in self.names:
            param = params[name]
            if _is_dtensor(param):
                _check_sharded(name, param)
            local = _local(param)
            copy = torch.empty(local.shape, dtype=torch.bfloat16, device=local.device)
            copy.copy_(local.detach())
            self._bound.append((param, copy))
        self.total = sum(param.numel() for param, _ in self._bound)  # a DTensor's numel is the whole tensor's

    @torch.no_grad()
    def count(self) -> int:
        """Entries whose bf16 value changed since the last count (or the binding); the copy follows them."""
        import torch.distributed as dist

        whole: dict[torch.device, torch.Tensor] = {}  # device -> count of the plain parameters on it
        sharded: dict[int, tuple[object, torch.Tensor]] = {}  # id(mesh) -> (mesh, count of the local shards)
        for index, (param, copy) in enumerate(self._bound):
            local = _local(param)
            if copy.device != local.device:  # the model moved after binding: the copy follows it
                copy = copy.to(local.device)
                self._bound[index] = (param, copy)
            changed = _count_and_update(local, copy)
            if _is_dtensor(param):
                mesh, so_far = sharded.get(id(param.device_mesh), (param.device_mesh, 0))
                sharded[id(param.device_mesh)] = (mesh, so_far + changed)
            else:
                whole[local.device] = whole.get(local.device, 0) + changed
        for mesh, changed in sharded.values():
            dist.all_reduce(changed, group=mesh.get_group())
        # one synchronisation per device and mesh, not per parameter
        return sum(int(n) for n in whole.values()) + sum(int(n) for _, n in sharded.values())

    def record(self, step: int) -> list[int]:
        """Count the step that just ended and keep (step, changed, total)."""
        entry = [int(step), self.count(), int(self.total)]
        self.records.append(entry)
        return entry

    def state_bytes(self) -> int:
        """Bytes of the bf16 copy on this process's devices."""
        return sum(copy.numel() * copy.element_size() for _, copy in self._bound)

    def frame(self):
        """The records as the checkpoint's `step_sparsity.parquet` holds them."""
        return records_frame(self.records)

    # -- resuming --------------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"args": {"names": self.names}, "attributes": {"records": self.records}}

    def resume(self, checkpoint: str | os.PathLike) -> None:
        """The records of the steps before a Trainer checkpoint, from its trainer_state.json."""
        saved = json.loads((Path(checkpoint) / "trainer_state.json").read_text()).get("stateful_callbacks") or {}
        mine = saved.get(type(self).__name__)
        mine = mine[0] if isinstance(mine, list) else mine
        self.records = [list(r) for r in (mine or {}).get("attributes", {}).get("records", [])]

    # -- Trainer events --------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        steps = [r[0] for r in self.records]
        if steps != list(range(1, state.global_step + 1)):
            raise ValueError(f"step_sparsity: training starts at step {state.global_step} with records of steps "
                             f"{_span(steps)}; a resumed run needs the records of every earlier step (in its "
                             "checkpoint's trainer_state.json). Delete the run's resume folder to train from step 0")
        if model is not None:
            self.bind(model)

    def on_step_end(self, args, state, control, **kwargs):
        self.record(state.global_step)


def _check_sharded(name: str, param: torch.Tensor) -> None:
    """Summing local counts over the mesh counts each entry once only when every placement shards it."""
    from torch.distributed.tensor import Shard

    if param.device_mesh.ndim != 1 or not all(isinstance(p, Shard) for p in param.placements):
        raise ValueError(f"step_sparsity counts FSDP2 shards on a one-dimensional mesh; {name} is placed "
                         f"{param.placements} on a {param.device_mesh.ndim}-D mesh (replicated entries would be "
                         "counted once per replica); set `step_sparsity: false` for this run")


def _span(steps: list[int]) -> str:
    return "none" if not steps else f"{steps[0]}..{steps[-1]} ({len(steps)} records)"
