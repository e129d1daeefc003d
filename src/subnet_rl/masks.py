"""Bit-packed update masks (1 bit per parameter) stored as safetensors of uint8."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_path

FORMAT = "subnet-rl-mask/1"


def pack(mask: torch.Tensor) -> torch.Tensor:
    """Flatten a boolean mask into uint8 bytes, 8 entries per byte (little bit order, zero padding)."""
    bits = mask.detach().reshape(-1).cpu().numpy().astype(bool, copy=False)
    return torch.from_numpy(np.packbits(bits, bitorder="little"))


def unpack(packed: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    numel = int(np.prod(shape, dtype=np.int64))
    bits = np.unpackbits(packed.numpy(), count=numel, bitorder="little").astype(bool)
    return torch.from_numpy(bits).reshape(shape)


def popcount(packed: torch.Tensor) -> int:
    return int(np.bitwise_count(packed.numpy()).sum(dtype=np.int64))


def save_masks(masks: dict[str, torch.Tensor], path: str | os.PathLike, criterion: str) -> None:
    """Save boolean masks (True = entry updated) bit-packed, with their shapes in the header."""
    from safetensors.torch import save_file

    packed = {name: pack(m) for name, m in masks.items()}
    metadata = {
        "format": FORMAT,
        "criterion": criterion,
        "shapes": json.dumps({name: list(m.shape) for name, m in masks.items()}),
    }
    with atomic_path(path) as tmp:
        save_file(packed, tmp, metadata=metadata)


class MaskFile:
    """Read a mask file tensor by tensor (packed), so memory stays bounded by one tensor."""

    def __init__(self, path: str | os.PathLike):
        from safetensors import safe_open

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"mask file {self.path} does not exist; run the mask stage first")
        try:
            self._file = safe_open(self.path, framework="pt")
            metadata = self._file.metadata() or {}
        except Exception as err:  # safetensors raises its own error types for corrupt headers
            raise ValueError(f"{self.path} is not a readable safetensors mask file ({err}); delete it and rerun") from err
        if metadata.get("format") != FORMAT:
            raise ValueError(f"{self.path} is not a subnet-rl mask (format {metadata.get('format')!r}, want {FORMAT!r})")
        self.criterion = metadata["criterion"]
        self.shapes: dict[str, tuple[int, ...]] = {k: tuple(v) for k, v in json.loads(metadata["shapes"]).items()}

    def names(self) -> list[str]:
        return sorted(self.shapes)

    def mask_numel(self, name: str) -> int:
        return int(np.prod(self.shapes[name], dtype=np.int64))

    def packed(self, name: str) -> torch.Tensor:
        return self._file.get_tensor(name)

    def mask(self, name: str) -> torch.Tensor:
        return unpack(self.packed(name), self.shapes[name])

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        for name in self.names():
            yield name, self.mask(name)


def extract_masks(before: str | os.PathLike, after: str | os.PathLike, criterion, out: str | os.PathLike) -> dict:
    """Write the updated-entry mask (True = changed under `criterion`) of a checkpoint pair."""
    from .checkpoints import StreamingCheckpoint, paired_tensors
    from .diff import unchanged_masks

    masks = {}
    with StreamingCheckpoint(before) as a, StreamingCheckpoint(after) as b:
        for name, ta, tb in paired_tensors(a, b):
            masks[name] = ~unchanged_masks(ta, tb, [criterion])[criterion]
    save_masks(masks, out, criterion.label)
    updated = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    return {"updated": updated, "total": total, "density": updated / total}
