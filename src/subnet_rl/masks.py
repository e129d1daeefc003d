"""Bit-packed update masks (1 bit per parameter, True = entry updated) stored as safetensors of uint8.

A mask is one `.safetensors` file, or a folder of them mirroring a sharded checkpoint (one mask file
per checkpoint shard, same file names). Both are written incrementally, chunk by chunk, and read back
chunk by chunk, so a 70B model's 8.75 GB of bits is never in memory at once. Reading and writing the
format lives here; computing a mask from a checkpoint pair lives in `mask_extraction` (so training,
which only reads masks, does not depend on the diff engine).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .atomic import atomic_path
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


def mask_writer(path: Path, shapes: dict[str, tuple[int, ...]], criterion: str) -> StreamingWriter:
    metadata = {"format": FORMAT, "criterion": criterion,
                "shapes": json.dumps({name: list(shape) for name, shape in shapes.items()})}
    return StreamingWriter(path, {name: ("U8", (_packed_bytes(s),)) for name, s in shapes.items()}, metadata)


def save_masks(masks: dict, path: str | os.PathLike, criterion: str) -> None:
    """Save in-memory boolean masks (True = entry updated) as one mask file."""
    with atomic_path(path) as tmp:
        writer = mask_writer(tmp, {name: tuple(m.shape) for name, m in masks.items()}, criterion)
        for name, mask in masks.items():
            writer.write(name, pack(mask))
        writer.close()


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


def random_mask_like(mask: MaskFile, density: float | None, seed: int, out: str | os.PathLike) -> dict:
    """A random control for subnetwork retraining ("Multiple Ticket Hypothesis", arXiv 2602.01599: random
    masks of 1% can match full RLVR), written as one mask file.

    Each tensor gets uniformly random entries (Bernoulli) at the density of `mask`'s same tensor when
    `density` is None ("same": the run's subnetwork size and its spread over layers), else at `density`.
    One tensor in memory at a time.
    """
    rng = np.random.default_rng(seed)
    updated = total = 0
    with atomic_path(out) as tmp:
        writer = mask_writer(tmp, mask.shapes, f"random:{'same' if density is None else density}")
        with ChunkReader(0) as reader:
            for name in mask.names():
                n = mask.mask_numel(name)
                share = density if density is not None else sum(
                    popcount(chunk) for chunk in mask.packed_chunks(name, reader)) / max(n, 1)
                chosen = rng.random(n, dtype=np.float32) < share
                updated += int(np.count_nonzero(chosen))
                total += n
                writer.write(name, pack(chosen))
        writer.close()
    return {"updated": updated, "total": total, "density": updated / total if total else float("nan")}
