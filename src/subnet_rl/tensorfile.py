"""Chunked reading and streaming writing of safetensors files, with memory bounded by one chunk.

`safetensors.safe_open` memory-maps whole files: every page it touches counts in the process's
resident memory until the file is closed, so diffing two 70B checkpoints through it grows the
footprint with the model. Here the (tiny, documented) safetensors layout is read with `pread` into
reusable chunk buffers instead, after validating the header against the file's size (in
`safetensors_header`, whose names are re-exported here), and masks are written header-first so their
bits can be appended chunk by chunk. Files stay plain safetensors: `safetensors` itself writes our test
inputs and reads what we write.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .floats import STORAGE
from .safetensors_header import (MAX_HEADER_BYTES, MAX_JSON_DEPTH, TensorEntry, TensorFileError, json_depth,
                                 read_header)

__all__ = ["MAX_HEADER_BYTES", "MAX_JSON_DEPTH", "ChunkReader", "StreamingWriter", "TensorEntry", "TensorFileError",
           "element_chunks", "json_depth", "read_header"]


class ChunkReader:
    """Reads element ranges of tensors into reused buffers (pread: no memory map, no page growth)."""

    def __init__(self, chunk_bytes: int):
        self.chunk_bytes = chunk_bytes
        self._buffers: list[np.ndarray] = []
        self._fds: dict[Path, int] = {}

    def _fd(self, file: Path) -> int:
        if file not in self._fds:
            self._fds[file] = os.open(file, os.O_RDONLY)
        return self._fds[file]

    def read(self, entry: TensorEntry, start: int, stop: int, slot: int = 0) -> np.ndarray:
        """Elements [start, stop) of the flattened tensor in its storage dtype (bf16 and fp8 as raw
        bits), as a 1-D array that lives until the next read into the same slot."""
        nbytes = (stop - start) * entry.itemsize
        while len(self._buffers) <= slot:
            self._buffers.append(np.empty(0, dtype=np.uint8))
        if self._buffers[slot].size < nbytes:
            self._buffers[slot] = np.empty(max(nbytes, self.chunk_bytes), dtype=np.uint8)
        buf = self._buffers[slot][:nbytes]
        view = memoryview(buf)
        offset = entry.offset + start * entry.itemsize
        done = 0
        fd = self._fd(entry.file)
        while done < nbytes:
            got = os.preadv(fd, [view[done:]], offset + done)
            if got <= 0:
                raise TensorFileError(f"{entry.file}: unexpected end of file reading tensor {entry.name}; "
                                      "the file is truncated: re-download or re-save it")
            done += got
        return buf.view(entry.storage)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._buffers.clear()

    def __enter__(self) -> "ChunkReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def element_chunks(numel: int, chunk_elems: int, align: int = 1) -> Iterator[tuple[int, int]]:
    """[start, stop) ranges covering numel elements; every boundary but the last is a multiple of align."""
    step = max(align, chunk_elems // align * align)
    for start in range(0, numel, step):
        yield start, min(numel, start + step)


class StreamingWriter:
    """Writes a safetensors file whose tensor sizes are known up front, data appended in order.

    The header is written first, then each tensor's bytes as they are produced, into a temporary file
    that the caller renames into place (see `atomic.atomic_path`).
    """

    def __init__(self, path: str | os.PathLike, tensors: dict[str, tuple[str, tuple[int, ...]]],
                 metadata: dict[str, str] | None = None):
        header: dict[str, object] = {}
        if metadata:
            header["__metadata__"] = metadata
        offset = 0
        self._order = []
        for name, (dtype, shape) in tensors.items():
            nbytes = np.dtype(STORAGE[dtype]).itemsize
            for d in shape:
                nbytes *= d
            header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
            self._order.append((name, nbytes))
            offset += nbytes
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        self._file = open(path, "wb")
        self._file.write(struct.pack("<Q", len(raw)) + raw)
        self._next = 0
        self._written = 0
        self._advance()

    def _advance(self) -> None:
        while self._next < len(self._order) and self._written == self._order[self._next][1]:
            self._next += 1
            self._written = 0

    def write(self, name: str, data: np.ndarray) -> None:
        """Append bytes of tensor `name` (tensors in declaration order, each possibly in several pieces)."""
        if self._next >= len(self._order):
            raise RuntimeError(f"wrote {name} after every declared tensor was complete")
        expected, nbytes = self._order[self._next]
        if name != expected:
            raise RuntimeError(f"wrote {name} while {expected} is unfinished")
        raw = np.ascontiguousarray(data).view(np.uint8)
        if self._written + raw.nbytes > nbytes:
            raise RuntimeError(f"{name}: more bytes than declared ({self._written + raw.nbytes} > {nbytes})")
        self._file.write(raw.data)
        self._written += raw.nbytes
        self._advance()

    def close(self) -> None:
        unfinished = [n for n, _ in self._order[self._next:]]
        self._file.close()
        if unfinished:
            raise RuntimeError(f"closed with tensors unwritten: {unfinished[:5]}")
