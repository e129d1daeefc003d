"""Bit-packed update masks (1 bit per parameter, True = entry updated) stored as safetensors of uint8.

A mask is one `.safetensors` file, or a folder of them mirroring a sharded checkpoint (one mask file
per checkpoint shard, same file names). Both are written incrementally, chunk by chunk, and read back
chunk by chunk, so a 70B model's 8.75 GB of bits is never in memory at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .checkpoints import Checkpoint
from .diff import COMPARED, DEFAULT_CHUNK_BYTES, Criterion, pair_tensors, stream_compare
from .tensorfile import ChunkReader, StreamingWriter, TensorEntry, element_chunks, read_header

FORMAT = "subnet-rl-mask/1"


def pack(mask) -> np.ndarray:
    """Flatten a boolean mask (NumPy or torch) into uint8 bytes, 8 entries per byte (little bit order,
    zero padding)."""
    return np.packbits(np.asarray(mask, dtype=bool).reshape(-1), bitorder="little")


def unpack(packed: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    numel = int(np.prod(shape, dtype=np.int64))
    return np.unpackbits(packed, count=numel, bitorder="little").astype(bool).reshape(shape)


def popcount(packed: np.ndarray) -> int:
    return int(np.bitwise_count(packed).sum(dtype=np.int64))


def _packed_bytes(shape: tuple[int, ...]) -> int:
    return (int(np.prod(shape, dtype=np.int64)) + 7) // 8


def _writer(path: Path, shapes: dict[str, tuple[int, ...]], criterion: str) -> StreamingWriter:
    metadata = {"format": FORMAT, "criterion": criterion,
                "shapes": json.dumps({name: list(shape) for name, shape in shapes.items()})}
    return StreamingWriter(path, {name: ("U8", (_packed_bytes(s),)) for name, s in shapes.items()}, metadata)


def save_masks(masks: dict, path: str | os.PathLike, criterion: str) -> None:
    """Save in-memory boolean masks (True = entry updated) as one mask file."""
    with atomic_path(path) as tmp:
        writer = _writer(tmp, {name: tuple(m.shape) for name, m in masks.items()}, criterion)
        for name, mask in masks.items():
            writer.write(name, pack(mask))
        writer.close()


def extract_masks(before: str | os.PathLike, after: str | os.PathLike, criterion: Criterion,
                  out: str | os.PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES, workers: int | None = None) -> dict:
    """Write the updated-entry mask of a checkpoint pair, streaming.

    `out` ending in .safetensors gives one file; any other path a folder with one mask file per shard
    of `before`. Masks cover parameters that were compared (resized tensors: their shared rows).
    """
    pairs = [p for p in pair_tensors(Checkpoint(before), Checkpoint(after)) if p.role == "param" and p.status in COMPARED]
    single = str(out).endswith(".safetensors")
    groups: dict[str, list] = {}
    for pair in pairs:
        groups.setdefault(Path(out).name if single else pair.before.file.name, []).append(pair)
    updated = total = 0
    with atomic_path(out, directory=not single) as tmp:
        for filename, group in groups.items():
            writer = _writer(tmp if single else tmp / filename, {p.name: p.compared_shape for p in group},
                             criterion.label)
            for pair, result in stream_compare(group, [criterion], chunk_bytes, want_masks=True, workers=workers):
                changed = ~result[criterion]
                updated += int(np.count_nonzero(changed))
                writer.write(pair.name, pack(changed))
            total += sum(p.numel for p in group)
            writer.close()
    return {"updated": updated, "total": total, "density": updated / total if total else float("nan")}


class MaskFile:
    """A mask file or folder of mask files, read tensor by tensor or chunk by chunk."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.is_dir():
            files = sorted(self.path.glob("*.safetensors"))
        elif self.path.is_file():
            files = [self.path]
        else:
            raise FileNotFoundError(f"mask {self.path} does not exist; run the mask stage first")
        if not files:
            raise FileNotFoundError(f"mask folder {self.path} holds no .safetensors files; rerun the mask stage")
        self.entries: dict[str, TensorEntry] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        criteria = set()
        for file in files:
            entries, metadata = read_header(file)
            if metadata.get("format") != FORMAT:
                raise ValueError(f"{file} is not a subnet-rl mask (format {metadata.get('format')!r}, want {FORMAT!r})")
            criteria.add(metadata["criterion"])
            self.entries.update(entries)
            self.shapes.update({k: tuple(v) for k, v in json.loads(metadata["shapes"]).items()})
        if len(criteria) != 1:
            raise ValueError(f"mask {self.path} mixes criteria {sorted(criteria)}; rerun the mask stage")
        self.criterion = criteria.pop()

    def names(self) -> list[str]:
        return sorted(self.shapes)

    def mask_numel(self, name: str) -> int:
        return int(np.prod(self.shapes[name], dtype=np.int64))

    def packed_chunks(self, name: str, reader: ChunkReader, slot: int = 0) -> Iterator[np.ndarray]:
        entry = self.entries[name]
        for start, stop in element_chunks(entry.numel, reader.chunk_bytes):
            yield reader.read(entry, start, stop, slot)

    def mask(self, name: str) -> np.ndarray:
        entry = self.entries[name]
        with ChunkReader(entry.nbytes) as reader:
            return unpack(reader.read(entry, 0, entry.numel), self.shapes[name])

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        for name in self.names():
            yield name, self.mask(name)
