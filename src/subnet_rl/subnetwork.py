"""Subnetwork finetuning: train only the entries of a mask, keep every other entry bit-identical.

Works on one device, under DDP and under FSDP2 (torch `fully_shard`, accelerate's `fsdp_version: 2`).
FSDP1 and DeepSpeed ZeRO-3 flatten parameters into buffers a per-entry mask cannot follow: refused.
"""

from __future__ import annotations

import os

import torch
from transformers import TrainerCallback

from .masks import MaskFile

SHARDED_PARAMETERS = (
    "subnetwork training masks each parameter's gradient entry by entry, which FSDP1 and DeepSpeed ZeRO-3 "
    "hide behind flattened parameters; use FSDP2 (`training.sharding: fsdp2`, accelerate's fsdp_version 2), "
    "DDP (`accelerate launch --multi_gpu`) or one device"
)


def refuse_flattened_parameters() -> None:
    """Stop early under FSDP1 / ZeRO-3 (accelerate says so through its environment variables)."""
    fsdp1 = (os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
             and os.environ.get("FSDP_VERSION", "1") != "2")
    zero3 = (os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
             and os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3")
    if fsdp1 or zero3:
        raise ValueError(SHARDED_PARAMETERS)


def _is_dtensor(tensor: torch.Tensor) -> bool:
    return type(tensor).__name__ == "DTensor"


def _data_parallel() -> bool:
    """Whether DDP may reduce gradients behind our back: several processes in a process group."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """The shard this process holds (the tensor itself when it is not sharded)."""
    return tensor.to_local() if _is_dtensor(tensor) else tensor


class SubnetworkMask(TrainerCallback):
    """Mask gradients before clipping and the optimizer step; keep frozen entries at their start values.

    The mask gives the paper's m * grad update, and clipping sees only subnetwork gradients:
    - in one process, a post-accumulate-grad hook zeroes the frozen entries of `param.grad` in place (the
      cheapest masking: no new gradient tensor);
    - under DDP a tensor hook masks each gradient before it is accumulated, so before DDP reduces it
      (in place after accumulation, DDP's own hooks could read and reduce the unmasked gradient);
    - an FSDP2 parameter is a DTensor whose tensor hooks never fire; its post-accumulate-grad hook, which
      FSDP2 calls on the sharded parameter after reduce-scatter, masks the local shard of the reduced
      gradient with a mask sharded like the parameter (same mesh, same placements).

    Memory is one bool per entry (1 byte per parameter, on the parameter's device; a shard's worth under
    FSDP2). Start values are kept only where the optimizer could move a frozen entry whose gradient is
    always zero: decoupled weight decay (AdamW's `weight_decay` > 0) does; with `weight_decay` 0 a
    zero-gradient entry keeps AdamW's / SGD's moments at zero and its update is exactly zero, so the
    entry never moves and no copy is needed. The copies are taken, and frozen entries restored after
    every optimizer step, only for parameters in an optimizer group with weight decay.

    The model may change its parameters between construction and training (accelerate's FSDP2 wrap
    replaces them with DTensors): the callback binds to the parameters, by name, at `on_train_begin`.
    """

    def __init__(self, model: torch.nn.Module, masks: MaskFile):
        refuse_flattened_parameters()
        params = dict(model.named_parameters())
        missing = sorted(set(params) - set(masks.shapes))
        if missing:
            raise ValueError(f"mask {masks.path} has no entry for parameter(s) {missing[:5]}; "
                             "was it extracted from a different model?")
        for name, param in params.items():
            if tuple(param.shape) != masks.shapes[name]:
                raise ValueError(f"mask {masks.path}: {name} has shape {masks.shapes[name]}, "
                                 f"the model's parameter has {tuple(param.shape)}")
        self._masks = masks
        self._names = list(params)
        self._bound: list[tuple[torch.nn.Parameter, torch.Tensor]] = []  # (parameter, frozen: bool, local)
        self._start: dict[int, torch.Tensor] = {}  # index in _bound -> start values (local), decayed only
        self._hooks: list = []
        self._replicated: bool | None = None  # hooks chosen for several processes (DDP) or one
        self.bind(model, keep_start=False)
        self.total = sum(p.numel() for p in params.values())
        self.trainable = self.total - sum(int(frozen.sum()) for _, frozen in self._bound)

    # -- binding ---------------------------------------------------------------------------------------
    def bind(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
             keep_start: bool = True) -> None:
        """Attach the masks to `model`'s parameters as they are now (plain tensors or FSDP2 DTensors), and
        keep start values of the parameters `optimizer` decays (of every parameter when the optimizer is
        not known; of none with keep_start=False)."""
        params = dict(model.named_parameters())
        # Rebind when the parameters changed (FSDP2 wrap) or the processes did: the callback is built before
        # the Trainer's arguments start the process group, and DDP needs the pre-accumulation hook.
        replicated = _data_parallel()
        if [id(p) for p, _ in self._bound] != [id(params[n]) for n in self._names] or replicated != self._replicated:
            self.remove_hooks()
            self._replicated = replicated
            self._bound = [(params[name], self._frozen_like(name, params[name])) for name in self._names]
            for index, (param, _) in enumerate(self._bound):
                if _is_dtensor(param) or not replicated:
                    self._hooks.append(param.register_post_accumulate_grad_hook(
                        lambda p, i=index: self._mask_accumulated_grad(i, p)))
                else:
                    self._hooks.append(param.register_hook(lambda grad, i=index: self._masked(i, grad)))
        self._start = {}
        if keep_start:
            decayed = None if optimizer is None else {
                id(p) for group in optimizer.param_groups if group.get("weight_decay", 0) for p in group["params"]}
            self._start = {i: _local(p).detach().clone() for i, (p, _) in enumerate(self._bound)
                           if decayed is None or id(p) in decayed}

    def _frozen_like(self, name: str, param: torch.Tensor) -> torch.Tensor:
        """The bool `frozen` mask of parameter `name`, on its device, sharded like it when it is a DTensor."""
        frozen = ~torch.from_numpy(self._masks.mask(name))
        if _is_dtensor(param):
            from torch.distributed.tensor import distribute_tensor

            # Every rank reads the same mask file: each keeps its own shard, nothing is sent.
            sharded = distribute_tensor(frozen.to(param.device_mesh.device_type), param.device_mesh,
                                        param.placements, src_data_rank=None)
            local = sharded.to_local()
            if local.shape != param.to_local().shape:
                raise RuntimeError(f"{name}: the mask's shard {tuple(local.shape)} does not match the parameter's "
                                   f"{tuple(param.to_local().shape)}")
            return local
        return frozen.to(param.device)

    def _frozen_on(self, index: int, device: torch.device) -> torch.Tensor:
        param, frozen = self._bound[index]
        if frozen.device != device:  # the Trainer moved the model after the callback was built
            frozen = frozen.to(device)
            self._bound[index] = (param, frozen)
        return frozen

    # -- masking ---------------------------------------------------------------------------------------
    def _masked(self, index: int, grad: torch.Tensor) -> torch.Tensor:
        return grad.masked_fill(self._frozen_on(index, grad.device), 0)

    def _mask_accumulated_grad(self, index: int, param: torch.Tensor) -> None:
        if param.grad is not None:
            grad = _local(param.grad)
            grad.masked_fill_(self._frozen_on(index, grad.device), 0)

    @torch.no_grad()
    def restore_frozen(self) -> None:
        """Frozen entries of decayed parameters back to their start values (exact, -0.0 included)."""
        for index, start in self._start.items():
            param = _local(self._bound[index][0])
            if start.device != param.device:
                start = self._start[index] = start.to(param.device)
            torch.where(self._frozen_on(index, param.device), start, param, out=param)

    def state_bytes(self) -> int:
        """Bytes this callback holds on its devices: masks and start copies."""
        tensors = [frozen for _, frozen in self._bound] + list(self._start.values())
        return sum(t.numel() * t.element_size() for t in tensors)

    def remove_hooks(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    # -- Trainer events --------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        if model is not None:
            self.bind(model, optimizer)

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.restore_frozen()

    def on_train_end(self, args, state, control, **kwargs):
        self.restore_frozen()
        self.remove_hooks()
