"""Checkpoints as a map from tensor name to where its bytes are: single files, folders, sharded folders.

Nothing is loaded here; `tensorfile.ChunkReader` reads the bytes, a chunk at a time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PureWindowsPath

from .tensorfile import TensorEntry, TensorFileError, read_header

CheckpointError = TensorFileError
TIED_PAIRS = (("lm_head.weight", "model.embed_tokens.weight"), ("lm_head.weight", "transformer.wte.weight"))
FP8_BLOCK = 128  # DeepSeek-V3's fp8 scale block (rows and columns), when a checkpoint's config names none


def _index_file(folder: Path) -> Path | None:
    indexes = sorted(folder.glob("*.safetensors.index.json"))
    if len(indexes) > 1:
        raise CheckpointError(f"{folder} holds several safetensors indexes {[i.name for i in indexes]}; keep one")
    return indexes[0] if indexes else None


def _weight_map(index: Path) -> dict[str, str]:
    """An index's weight_map (tensor name -> shard file name), refused unless it is a map of strings."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
    except (OSError, ValueError, AttributeError, RecursionError) as err:  # unreadable, not JSON, not an object
        raise CheckpointError(f"{index}: cannot read a safetensors index ({err}); re-download the checkpoint") from err
    if not isinstance(weight_map, dict) or not all(
            isinstance(name, str) and isinstance(shard, str) for name, shard in weight_map.items()):
        raise CheckpointError(f"{index}: weight_map is not a map of tensor names to shard file names "
                              f"({str(weight_map)[:200]}); the index is corrupt: re-download the checkpoint")
    return weight_map


def _hub_blobs(folder: Path) -> Path | None:
    """The Hugging Face cache's blob folder of a snapshot folder (`<repo>/snapshots/<commit>` links each
    file to `<repo>/blobs/<hash>`), or None for any other folder."""
    return folder.parent.parent / "blobs" if folder.parent.name == "snapshots" else None


def _shard_file(index: Path, folder: Path, shard: str) -> Path:
    """The file of a shard an index names: a relative name inside the checkpoint folder, with no `..`,
    that is a file there (a symlink only into the folder, or, in a hub snapshot, into the cache's blobs).

    An index is downloaded content: a name like `../x.safetensors` or `/etc/x` would make the diff read
    (and compare) whatever file it points to.
    """
    fix = "re-download the checkpoint, or fix the index so that it names the shard files of this folder"
    if ("\\" in shard or "\0" in shard or PureWindowsPath(shard).drive
            or any(part in ("", ".", "..") for part in shard.split("/"))):  # "" also: absolute, "a//b", "a/"
        raise CheckpointError(f"{index} lists shard {shard!r}, which is not a plain relative file name inside "
                              f"{folder}; {fix}")
    file = folder / shard
    if not file.is_file():
        raise CheckpointError(f"{index} lists shard {shard}, which is missing from {folder}; re-download the "
                              "checkpoint")
    root = folder.resolve()
    target = file.resolve()
    blobs = _hub_blobs(root)
    if not (target.is_relative_to(root) or (blobs is not None and target.parent == blobs.resolve())):
        raise CheckpointError(f"{index} lists shard {shard}, whose file {file} resolves to {target}, outside "
                              f"{root}; {fix} (copy the shard into the folder instead of linking it)")
    return file


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
        weight_map = _weight_map(index)
        for shard in sorted(set(weight_map.values())):
            file = _shard_file(index, self.path, shard)
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
