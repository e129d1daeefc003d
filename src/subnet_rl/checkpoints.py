"""Checkpoints as a map from tensor name to where its bytes are: single files, folders, sharded folders.

Nothing is loaded here; `tensorfile.ChunkReader` reads the bytes, a chunk at a time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .tensorfile import TensorEntry, TensorFileError, read_header

CheckpointError = TensorFileError
TIED_PAIRS = (("lm_head.weight", "model.embed_tokens.weight"), ("lm_head.weight", "transformer.wte.weight"))
FP8_BLOCK = 128  # DeepSeek-V3's fp8 scale block (rows and columns), when a checkpoint's config names none


def _index_file(folder: Path) -> Path | None:
    indexes = sorted(folder.glob("*.safetensors.index.json"))
    if len(indexes) > 1:
        raise CheckpointError(f"{folder} holds several safetensors indexes {[i.name for i in indexes]}; keep one")
    return indexes[0] if indexes else None


def resolve(path: str | os.PathLike) -> Path:
    """A checkpoint path, following a download record (`*.json` written by the download stage)."""
    path = Path(path)
    if path.suffix == ".json" and path.is_file():
        record = json.loads(path.read_text())
        if "path" not in record:
            raise CheckpointError(f"{path} is not a download record (no 'path'); pass a checkpoint folder")
        return Path(record["path"])
    return path


class Checkpoint:
    """Tensor entries of a checkpoint folder (sharded through its index, or not), a single file, or the
    folder a download record points to."""

    def __init__(self, path: str | os.PathLike):
        self.path = resolve(path)
        self.config: dict = {}
        self.entries: dict[str, TensorEntry] = {}
        if self.path.is_file():
            self._add_file(self.path)
            return
        if not self.path.is_dir():
            raise CheckpointError(f"{self.path} does not exist; pass a checkpoint folder or a .safetensors file")
        if (self.path / "config.json").is_file():
            self.config = json.loads((self.path / "config.json").read_text())
        index = _index_file(self.path)
        if index is not None:
            self._add_indexed(index)
        else:
            files = sorted(self.path.glob("*.safetensors"))
            if not files:
                raise CheckpointError(f"{self.path} holds no *.safetensors files; convert the checkpoint to "
                                      "safetensors first")
            for file in files:
                self._add_file(file)

    def _add_file(self, file: Path) -> dict[str, TensorEntry]:
        entries, _ = read_header(file)
        for name in entries:
            if name in self.entries:
                raise CheckpointError(f"{file}: tensor {name} also appears in {self.entries[name].file.name}")
        self.entries.update(entries)
        return entries

    def _add_indexed(self, index: Path) -> None:
        weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
        for shard in sorted(set(weight_map.values())):
            file = self.path / shard
            if not file.is_file():
                raise CheckpointError(f"{index} lists shard {shard}, which is missing from {self.path}; "
                                      "re-download the checkpoint")
            entries = self._add_file(file)
            for name in entries:
                if weight_map.get(name) != shard:
                    raise CheckpointError(f"{file} holds {name}, which {index.name} places in "
                                          f"{weight_map.get(name)}; the index and the shards disagree")
        missing = sorted(set(weight_map) - set(self.entries))
        if missing:
            raise CheckpointError(f"{index.name} lists tensors no shard holds: {missing[:5]}; re-download")

    @property
    def files(self) -> list[Path]:
        return sorted({e.file for e in self.entries.values()})

    def _setting(self, key: str, default=None):
        """A config value, at the top level or in a nested `text_config` (multimodal checkpoints)."""
        if key in self.config:
            return self.config[key]
        return (self.config.get("text_config") or {}).get(key, default)

    @property
    def ties_embeddings(self) -> bool:
        return bool(self._setting("tie_word_embeddings", False))

    def tied_weights(self) -> dict[str, str]:
        """Weights this checkpoint ties (name -> the tensor it is), whether or not a copy is stored."""
        if not self.ties_embeddings:
            return {}
        return {copy: source for copy, source in TIED_PAIRS if source in self.entries}

    def tied_duplicates(self) -> dict[str, str]:
        """Stored copies of tied weights (name -> the tensor it ties to), to count each weight once."""
        return {copy: source for copy, source in self.tied_weights().items() if copy in self.entries}

    @property
    def fp8_block(self) -> tuple[int, int]:
        """Rows and columns of one fp8 scale block (`quantization_config.weight_block_size`; 128 x 128,
        DeepSeek-V3's, when the config does not say)."""
        size = (self._setting("quantization_config") or {}).get("weight_block_size") or [FP8_BLOCK, FP8_BLOCK]
        if len(size) != 2 or not all(isinstance(n, int) and n > 0 for n in size):
            raise CheckpointError(f"{self.path}: quantization_config.weight_block_size {size!r} is not two "
                                  "positive integers")
        return int(size[0]), int(size[1])
