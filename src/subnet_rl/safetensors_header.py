"""The safetensors header: parsed and validated against the file before any tensor byte is read.

A checkpoint comes from anywhere (the hub, a shared disk, a half-finished copy), and `tensorfile` reads
tensors with `pread` at the offsets the header gives, so the header is checked as strictly as the
safetensors library checks it: size, encoding, nesting depth, dtypes, shapes, and offsets that tile the
data area exactly. A file that fails is refused with a TensorFileError naming the file and the fix.
Kept apart from the chunk reading and writing in `tensorfile`, which re-exports the names here.
"""

from __future__ import annotations

import gc
import json
import os
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .floats import STORAGE

MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit (HeaderTooLarge)
MAX_JSON_DEPTH = 64  # a valid header nests 3 deep ({name: {"shape": [...]}}); serde_json stops at 128
_STORAGE_DTYPES = {name: np.dtype(t) for name, t in STORAGE.items()}
_ITEMSIZE = {name: t.itemsize for name, t in _STORAGE_DTYPES.items()}
_FIX = "re-download or re-save the file"
_USIZE_MAX = 2**64 - 1


class TensorFileError(ValueError):
    """A safetensors file that cannot be trusted; the message names the file and the fix."""


class TensorEntry(NamedTuple):
    """Where one tensor's bytes live (a named tuple: a checkpoint with a million tensors holds a million
    of these, and a tuple is smaller than a frozen dataclass and 3-6 times cheaper to build)."""

    name: str
    dtype: str  # safetensors dtype name (F32, BF16, F8_E4M3, ...)
    shape: tuple[int, ...]
    file: Path
    offset: int  # absolute byte offset of the tensor's data in `file`
    nbytes: int

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def storage(self) -> np.dtype:
        return _STORAGE_DTYPES[self.dtype]

    @property
    def itemsize(self) -> int:
        return _ITEMSIZE[self.dtype]


_NOT_STRUCTURAL = bytes(c for c in range(256) if c not in b'"[]{}')
_DEPTH_STEP = np.zeros(256, dtype=np.int8)
_DEPTH_STEP[[ord("["), ord("{")]] = 1
_DEPTH_STEP[[ord("]"), ord("}")]] = -1


def json_depth(raw: bytes, limit: int = MAX_JSON_DEPTH, block: int = 1 << 22) -> int:
    """How deep the arrays and objects of a JSON text nest, without parsing it (linear, in blocks of
    `block` structural bytes); stops counting once past `limit`.

    Escapes are removed first (`\\\\`, then `\\"`: what is left of a backslash run is one escape), so the
    remaining quotes delimit strings, and brackets after an even number of quotes are structural.
    """
    structural = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURAL)
    tokens = np.frombuffer(structural, dtype=np.uint8)
    depth = deepest = quotes = 0
    for start in range(0, tokens.size, block):
        chunk = tokens[start:start + block]
        quote = chunk == ord('"')
        parity = (np.cumsum(quote, dtype=np.uint8) + quotes) & 1  # quotes seen so far, mod 2
        quotes = int(parity[-1])
        steps = _DEPTH_STEP[chunk[(parity == 0) & ~quote]]
        if steps.size:
            levels = np.cumsum(steps, dtype=np.int64)
            deepest = max(deepest, depth + int(levels.max()))
            depth += int(levels[-1])
            if deepest > limit:
                break
    return deepest


def _header_text(path: Path, raw: bytes) -> str:
    """The header's text: UTF-8 and at most MAX_JSON_DEPTH deep, checked before any parsing."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TensorFileError(f"{path}: the safetensors header is not UTF-8 ({err}); the file is corrupt or not "
                              f"safetensors: {_FIX}") from err
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise TensorFileError(f"{path}: the safetensors header nests more than {MAX_JSON_DEPTH} levels deep (a "
                              f"valid one nests 3); the file is corrupt or hostile: {_FIX}")
    return text


def _header_json(path: Path, text: str) -> dict:
    """The header as a dict (a JSON object, as safetensors requires)."""
    enabled = gc.isenabled()
    gc.disable()  # millions of new containers: collections would rescan them all, again and again
    try:
        header = json.loads(text)
    except (ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
        raise TensorFileError(f"{path}: the safetensors header is not valid JSON ({err}); {_FIX}") from err
    finally:
        if enabled:
            gc.enable()
    if not isinstance(header, dict):
        raise TensorFileError(f"{path}: the safetensors header is a JSON {type(header).__name__}, not an object "
                              f"of tensors; the file is corrupt or not safetensors: {_FIX}")
    return header


def _is_count(x) -> bool:
    """A non-negative JSON integer of 64 bits (not a bool, a float or a string): safetensors' usize."""
    return type(x) is int and 0 <= x <= _USIZE_MAX


def read_header(path: str | os.PathLike) -> tuple[dict[str, TensorEntry], dict[str, str]]:
    """Parse and validate a safetensors header as strictly as the safetensors library does.

    Refused, with a TensorFileError naming the file, the tensor, what is wrong and the fix: a header longer
    than MAX_HEADER_BYTES or than the file, not UTF-8, not a JSON object or nested deeper than
    MAX_JSON_DEPTH; `__metadata__` that is not a map of strings; an entry without a known dtype, a shape of
    non-negative integers or two non-negative integer data offsets; offsets past the data area; a byte
    count other than itemsize x prod(shape); and offsets that, sorted, do not tile the data area from 0 to
    its end without gap or overlap (safetensors' InvalidOffset and MetadataIncompleteBuffer: the data area
    is exactly the file after the header, so no tensor can point into the header or into another tensor).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise TensorFileError(f"{path} is {size} bytes: too short for a safetensors file; {_FIX}")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > MAX_HEADER_BYTES:
                raise TensorFileError(f"{path}: header length {header_len} exceeds the {MAX_HEADER_BYTES} bytes "
                                      f"safetensors allows; the file is corrupt or not safetensors: {_FIX}")
            if 8 + header_len > size:
                raise TensorFileError(f"{path}: header length {header_len} does not fit the file's {size} bytes; "
                                      f"the file is truncated or not safetensors: {_FIX}")
            raw = f.read(header_len)
    except OSError as err:
        raise TensorFileError(f"{path}: cannot read a safetensors header ({err}); {_FIX}") from err
    if len(raw) != header_len:
        raise TensorFileError(f"{path} is truncated: its header needs {header_len} bytes, {len(raw)} could be "
                              f"read; {_FIX}")
    text = _header_text(path, raw)
    del raw  # a large header: hold one copy of it at a time
    header = _header_json(path, text)
    del text
    data_start = 8 + header_len
    data_len = size - data_start
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise TensorFileError(f"{path}: __metadata__ is not a map of strings to strings ({str(metadata)[:200]}); "
                              f"the header is corrupt: {_FIX}")

    def bad(name: str, what: str) -> TensorFileError:
        return TensorFileError(f"{path}: tensor {name!r} {what}; the header is corrupt: {_FIX}")

    # One pass, popping each parsed entry as it is read (its dicts and lists are freed as tuples replace
    # them); popitem goes last to first, so the entries are reversed at the end to keep the file's order.
    built: list[TensorEntry] = []
    begins: list[int] = []
    ends: list[int] = []
    new = tuple.__new__
    enabled = gc.isenabled()
    gc.disable()
    try:
        while header:
            name, info = header.popitem()
            if not isinstance(info, dict):
                raise bad(name, f"is {str(info)[:100]!r}, not an object with dtype, shape and data_offsets")
            dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
            itemsize = _ITEMSIZE.get(dtype) if isinstance(dtype, str) else None
            if itemsize is None:
                raise TensorFileError(f"{path}: tensor {name} has dtype {dtype!r}, which subnet-rl cannot compare "
                                      f"(supported: {', '.join(STORAGE)})")
            if type(shape) is not list:
                raise bad(name, f"has shape {str(shape)[:200]}: not a list of non-negative integers")
            numel = 1
            for d in shape:
                if type(d) is not int or not 0 <= d <= _USIZE_MAX:  # not a bool, float or string: a usize
                    raise bad(name, f"has shape {str(shape)[:200]}: not a list of non-negative integers")
                numel *= d
                if numel > _USIZE_MAX:  # safetensors: ValidationOverflow (and no huge product to compute)
                    raise bad(name, f"has shape {str(shape)[:200]}, whose size overflows 64 bits")
            nbytes = numel * itemsize
            if type(offsets) is not list or len(offsets) != 2 or not (_is_count(offsets[0]) and _is_count(offsets[1])):
                raise bad(name, f"has data_offsets {str(offsets)[:200]}: not two non-negative integers")
            begin, end = offsets
            if end > data_len:
                raise TensorFileError(f"{path} is truncated or its header is corrupt: tensor {name!r} claims bytes "
                                      f"[{begin}, {end}) of a data area of {data_len} bytes; {_FIX}")
            if end - begin != nbytes:
                raise bad(name, f"claims bytes [{begin}, {end}) ({end - begin} bytes) for shape "
                                f"{str(shape)[:200]} of {dtype}, which takes {nbytes} bytes")
            built.append(new(TensorEntry, (name, dtype, tuple(shape), path, data_start + begin, nbytes)))
            begins.append(begin)
            ends.append(end)
    finally:
        if enabled:
            gc.enable()
    _check_tiling(path, built, begins, ends, data_len)
    return {entry.name: entry for entry in reversed(built)}, metadata


def _check_tiling(path: Path, built: list[TensorEntry], begins: list[int], ends: list[int], data_len: int) -> None:
    """Sorted by (begin, end), the tensors must cover [0, data_len) exactly, each starting where the
    previous one ended (safetensors: InvalidOffset, MetadataIncompleteBuffer). Every offset is known to
    be within [0, data_len] here, so they fit int64."""
    if not built:
        if data_len:
            raise TensorFileError(f"{path}: the header lists no tensors, but {data_len} bytes follow it; {_FIX}")
        return
    begin = np.array(begins, dtype=np.int64)
    end = np.array(ends, dtype=np.int64)
    order = np.lexsort((end, begin))
    begin, end = begin[order], end[order]
    expected = np.empty_like(begin)
    expected[0] = 0
    expected[1:] = end[:-1]
    wrong = np.flatnonzero(begin != expected)
    if wrong.size:
        i = int(wrong[0])
        name = built[int(order[i])].name
        if i == 0:
            where = f"starts at byte {begin[0]} of the data area, leaving bytes [0, {begin[0]}) unclaimed"
        else:
            other = built[int(order[i - 1])].name
            kind = "overlaps" if begin[i] < expected[i] else "leaves a gap after"
            where = (f"claims bytes [{begin[i]}, {end[i]}), which {kind} tensor {other!r} "
                     f"([{begin[i - 1]}, {end[i - 1]}))")
        raise TensorFileError(f"{path}: tensor {name!r} {where}; tensors must be contiguous and must not overlap "
                              f"(safetensors refuses this file: InvalidOffset); the header is corrupt: {_FIX}")
    if int(end[-1]) != data_len:
        raise TensorFileError(f"{path}: its tensors end at byte {int(end[-1])} of the data area, but {data_len} bytes "
                              f"follow the header (safetensors refuses this file: MetadataIncompleteBuffer); "
                              f"the file is corrupt: {_FIX}")
