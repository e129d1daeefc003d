"""Subnetwork finetuning: train only the entries of a mask, keep every other entry bit-identical."""

from __future__ import annotations

import os

import torch
from transformers import TrainerCallback

from .masks import MaskFile

SHARDED_PARAMETERS = (
    "subnetwork training masks each parameter's gradient entry by entry, which FSDP and DeepSpeed ZeRO-3 "
    "hide behind flattened, sharded parameters; run it with DDP (`accelerate launch --multi_gpu`, what the "
    "workflow uses for resources.train.gpu > 1) or on one device"
)


def refuse_sharded_parameters() -> None:
    """Stop early under FSDP / ZeRO-3 (accelerate says so through its environment variables)."""
    fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    zero3 = (os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
             and os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3")
    if fsdp or zero3:
        raise ValueError(SHARDED_PARAMETERS)


class SubnetworkMask(TrainerCallback):
    """Mask gradients before clipping and the optimizer step, then restore frozen entries after it.

    The gradient hook gives the paper's m * grad update (clipping sees only subnetwork gradients). The
    restore makes frozen entries exactly their start values whatever the optimizer does to them
    (decoupled weight decay moves an entry even when its gradient is always zero).

    The masks and start values follow each parameter's device: the callback is built while the model is
    still on the CPU, and the Trainer moves it to the GPU afterwards. Both steps are dense elementwise
    ops (no boolean indexing, no host synchronisation): the hook multiplies by a 0/1 mask in the
    gradient's dtype (a same-dtype product is the cheapest masking op), the restore is one
    `torch.where(frozen, start, param)` per parameter, exact for every value (-0.0 included). Memory:
    the start values, a bool and a 0/1 mask per parameter (9 bytes per fp32 entry).
    """

    def __init__(self, model: torch.nn.Module, masks: MaskFile):
        refuse_sharded_parameters()
        params = dict(model.named_parameters())
        missing = sorted(set(params) - set(masks.shapes))
        if missing:
            raise ValueError(f"mask {masks.path} has no entry for parameter(s) {missing[:5]}; "
                             "was it extracted from a different model?")
        self._params: list[torch.nn.Parameter] = []
        self._frozen: list[torch.Tensor] = []
        self._keep: list[torch.Tensor] = []
        self._start: list[torch.Tensor] = []
        self._hooks = []
        for name, param in params.items():
            if tuple(param.shape) != masks.shapes[name]:
                raise ValueError(f"mask {masks.path}: {name} has shape {masks.shapes[name]}, "
                                 f"the model's parameter has {tuple(param.shape)}")
            index = len(self._params)
            self._params.append(param)
            trainable = torch.from_numpy(masks.mask(name))
            self._frozen.append(~trainable)
            self._keep.append(trainable.to(param.dtype))
            self._start.append(param.detach().clone())
            self._hooks.append(param.register_hook(lambda grad, i=index: grad * self._keep_like(i, grad)))
        self.total = sum(p.numel() for p in self._params)
        self.trainable = self.total - sum(int(f.sum()) for f in self._frozen)

    def _keep_like(self, index: int, grad: torch.Tensor) -> torch.Tensor:
        """The 0/1 mask of parameter `index` on the gradient's device and in its dtype (moved there once)."""
        keep = self._keep[index]
        if keep.device != grad.device or keep.dtype != grad.dtype:
            keep = self._keep[index] = keep.to(device=grad.device, dtype=grad.dtype)
        return keep

    def follow_devices(self) -> None:
        """Move masks and start values to where the parameters are now (and in their dtype)."""
        for i, param in enumerate(self._params):
            self._keep_like(i, param)
            if self._frozen[i].device != param.device:
                self._frozen[i] = self._frozen[i].to(param.device)
            if self._start[i].device != param.device or self._start[i].dtype != param.dtype:
                self._start[i] = self._start[i].to(device=param.device, dtype=param.dtype)

    @torch.no_grad()
    def restore_frozen(self) -> None:
        self.follow_devices()
        for param, frozen, start in zip(self._params, self._frozen, self._start, strict=True):
            torch.where(frozen, start, param.data, out=param.data)

    def on_train_begin(self, args, state, control, **kwargs):
        self.follow_devices()

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.restore_frozen()

    def on_train_end(self, args, state, control, **kwargs):
        self.restore_frozen()
        for hook in self._hooks:
            hook.remove()
