"""Compared tensor pairs streamed chunk by chunk on worker threads, in bounded memory.

Tensors are read in chunks (`tensorfile.ChunkReader`): memory is bounded by a chunk, never by a tensor
or a model, and NumPy releases the GIL, so a few threads keep the disk and the cores busy.
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..floats import dequantize, f32_to_bf16_bits, to_bf16_bits, to_float32
from ..tensorfile import ChunkReader, TensorEntry, element_chunks
from .criteria import Criterion
from .kernel import compare_chunk
from .pairing import TensorPair

DEFAULT_CHUNK_BYTES = 16 * 2**20


@dataclass(frozen=True)
class _Chunk:
    pair: TensorPair
    start: int
    stop: int
    scales: tuple[np.ndarray | None, np.ndarray | None]


def _chunks(pairs: Iterable[TensorPair], chunk_bytes: int, reader: ChunkReader) -> Iterator[_Chunk]:
    """Element ranges of every compared pair; fp8 block-scaled tensors split on block-row boundaries.
    Scales are decoded from their own stored dtype (float32 in DeepSeek-V3; bf16 or fp16 elsewhere)."""
    for pair in pairs:
        scales = tuple(to_float32(reader.read(s, 0, s.numel, slot=0), s.dtype).copy().reshape(s.shape)
                       if s is not None else None for s in (pair.scale_before, pair.scale_after))
        row_elems = max(1, pair.row_elems)
        block_rows = [block[0] for block in (pair.block_before, pair.block_after) if block is not None]
        align = math.lcm(*block_rows) * row_elems if block_rows else 8
        itemsize = max(pair.before.itemsize, pair.after.itemsize)
        for start, stop in element_chunks(pair.numel, max(1, chunk_bytes // itemsize), align):
            yield _Chunk(pair, start, stop, scales)


def _bits(raw: np.ndarray, entry: TensorEntry, scale: np.ndarray | None, block: tuple[int, int] | None,
          row_elems: int, first_row: int) -> np.ndarray:
    """Values to compare, as bf16 bits: the stored values, or fp8 weights times their block scales."""
    if scale is None:
        return to_bf16_bits(raw, entry.dtype)
    return f32_to_bf16_bits(dequantize(raw, entry.dtype, scale, row_elems, first_row, block))


def _ordered_map(fn: Callable, items: Iterable, workers: int) -> Iterator:
    """`map` over a thread pool, results in order, at most 2 x workers chunks in flight (bounded memory)."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _default_workers() -> int:
    """The cores this process may use, at most 4 (beyond that the disk, not NumPy, is the limit)."""
    return max(1, min(4, len(os.sched_getaffinity(0))))


def stream_compare(pairs: list[TensorPair], criteria: list[Criterion], chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                   want_masks: bool = False, workers: int | None = None) -> Iterator[tuple[TensorPair, dict]]:
    """Compare chunk by chunk on worker threads (NumPy releases the GIL); yield (pair, per-chunk result)
    in file order, so masks can be appended to a file as they come."""
    local = threading.local()
    readers: list[ChunkReader] = []

    def run(chunk: _Chunk) -> tuple[TensorPair, dict]:
        if not hasattr(local, "reader"):
            local.reader = ChunkReader(chunk_bytes)
            readers.append(local.reader)
        pair, row_elems = chunk.pair, max(1, chunk.pair.row_elems)
        raw_a = local.reader.read(pair.before, chunk.start, chunk.stop, slot=0)
        raw_b = local.reader.read(pair.after, chunk.start, chunk.stop, slot=1)
        first_row = chunk.start // row_elems
        bits_a = _bits(raw_a, pair.before, chunk.scales[0], pair.block_before, row_elems, first_row)
        bits_b = _bits(raw_b, pair.after, chunk.scales[1], pair.block_after, row_elems, first_row)
        return pair, compare_chunk(raw_a, pair.before.dtype, raw_b, pair.after.dtype, bits_a, bits_b, criteria,
                                   want_masks)

    with ChunkReader(chunk_bytes) as scale_reader:
        try:
            yield from _ordered_map(run, _chunks(pairs, chunk_bytes, scale_reader), workers or _default_workers())
        finally:
            for reader in readers:
                reader.close()
