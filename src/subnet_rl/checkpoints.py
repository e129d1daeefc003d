"""Streaming access to safetensors checkpoints: one tensor at a time, never a whole model in memory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import torch


class CheckpointError(ValueError):
    """A checkpoint that cannot be read as asked; the message names the file and the fix."""


def weight_files(path: str | os.PathLike) -> list[Path]:
    """The safetensors files of a checkpoint folder, or the file itself."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise CheckpointError(f"{path} does not exist; pass a checkpoint folder or a .safetensors file")
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{path} holds no *.safetensors files; convert the checkpoint to safetensors first")
    return files


class StreamingCheckpoint:
    """Maps tensor names to files lazily; `get` loads a single tensor."""

    def __init__(self, path: str | os.PathLike):
        from safetensors import safe_open

        self.path = Path(path)
        self._stack = ExitStack()
        self._where: dict[str, object] = {}
        for file in weight_files(path):
            try:
                handle = self._stack.enter_context(safe_open(file, framework="pt"))
            except Exception as err:  # safetensors raises its own error types for bad headers
                self._stack.close()
                raise CheckpointError(f"{file} is not a readable safetensors file ({err}); "
                                      "re-download or re-save it") from err
            for name in handle.keys():
                if name in self._where:
                    raise CheckpointError(f"{file}: tensor {name} also appears in another shard of {self.path}")
                self._where[name] = handle

    def names(self) -> list[str]:
        return sorted(self._where)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._where[name].get_slice(name).get_shape())

    def get(self, name: str) -> torch.Tensor:
        try:
            return self._where[name].get_tensor(name)
        except Exception as err:
            raise CheckpointError(f"{self.path}: cannot read tensor {name} ({err}); the file may be truncated "
                                  "or corrupt: re-download or re-save it") from err

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> "StreamingCheckpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def paired_tensors(before: StreamingCheckpoint, after: StreamingCheckpoint) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """Yield (name, before, after) tensor pairs one at a time, after checking that the two match."""
    only_before = sorted(set(before.names()) - set(after.names()))
    only_after = sorted(set(after.names()) - set(before.names()))
    if only_before or only_after:
        raise CheckpointError(
            f"{before.path} and {after.path} hold different tensors "
            f"(only before: {only_before[:5]}, only after: {only_after[:5]}); diff checkpoints of one architecture"
        )
    for name in before.names():
        if before.shape(name) != after.shape(name):
            raise CheckpointError(f"tensor {name} has shape {before.shape(name)} in {before.path} but "
                                  f"{after.shape(name)} in {after.path}; diff checkpoints of one architecture")
    for name in before.names():
        yield name, before.get(name), after.get(name)
