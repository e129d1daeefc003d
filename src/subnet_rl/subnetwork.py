"""Subnetwork finetuning: train only the entries of a mask, keep every other entry bit-identical."""

from __future__ import annotations

import torch
from transformers import TrainerCallback

from .masks import MaskFile


class SubnetworkMask(TrainerCallback):
    """Mask gradients before clipping and the optimizer step, then restore frozen entries after it.

    The gradient hook gives the paper's m * grad update (clipping sees only subnetwork gradients). The
    restore makes frozen entries exactly their start values whatever the optimizer does to them
    (decoupled weight decay moves an entry even when its gradient is always zero).
    """

    def __init__(self, model: torch.nn.Module, masks: MaskFile):
        self._frozen: list[tuple[torch.nn.Parameter, torch.Tensor, torch.Tensor]] = []
        self._hooks = []
        params = dict(model.named_parameters())
        missing = sorted(set(params) - set(masks.shapes))
        if missing:
            raise ValueError(f"mask {masks.path} has no entry for parameter(s) {missing[:5]}; "
                             "was it extracted from a different model?")
        for name, param in params.items():
            if tuple(param.shape) != masks.shapes[name]:
                raise ValueError(f"mask {masks.path}: {name} has shape {masks.shapes[name]}, "
                                 f"the model's parameter has {tuple(param.shape)}")
            trainable = torch.from_numpy(masks.mask(name)).to(param.device)
            frozen = ~trainable
            self._hooks.append(param.register_hook(lambda grad, keep=trainable: grad * keep))
            self._frozen.append((param, frozen, param.detach()[frozen].clone()))
        self.trainable = sum(int((~f).sum()) for _, f, _ in self._frozen)
        self.total = sum(p.numel() for p, _, _ in self._frozen)

    @torch.no_grad()
    def restore_frozen(self) -> None:
        for param, frozen, values in self._frozen:
            param.data[frozen] = values

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.restore_frozen()

    def on_train_end(self, args, state, control, **kwargs):
        self.restore_frozen()
        for hook in self._hooks:
            hook.remove()
