"""Hostile and corrupt checkpoints (issue 14, "nothing silent"): every file is built here, byte by byte.

Each header check is exercised by one test that fails if the check is removed (the messages are checked,
since some corruptions would otherwise be caught later, and less clearly). Where the safetensors library
itself refuses the file, the test asserts that too: we are at least as strict as the format's own reader.
"""

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from subnet_rl.checkpoints import Checkpoint, CheckpointError
from subnet_rl.diff import diff_checkpoints, skipped, sparsity
from subnet_rl.tensorfile import MAX_HEADER_BYTES, MAX_JSON_DEPTH, TensorFileError, json_depth, read_header

FIX = "re-download or re-save"


def _entry(dtype: str, shape: list, begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def _write(path: Path, header: dict | list | bytes, data: bytes) -> Path:
    """A file in safetensors layout: u64 header length, the header (JSON, or raw bytes as given), data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def _valid_header() -> dict:
    """a: 4 float32 (bytes [0, 16)), b: 2 x 3 float32 (bytes [16, 40)); data area of 40 bytes."""
    return {"__metadata__": {"format": "np"}, "a": _entry("F32", [4], 0, 16), "b": _entry("F32", [2, 3], 16, 40)}


def _refused(path: Path, *needles: str) -> str:
    """Our reader refuses `path` with a TensorFileError naming the file, the fix and every needle."""
    with pytest.raises(TensorFileError) as info:
        read_header(path)
    message = str(info.value)
    assert path.name in message and FIX in message, message
    for needle in needles:
        assert needle in message, message
    return message


def _safetensors_refuses(path: Path) -> None:
    with pytest.raises(SafetensorError):
        with safe_open(path, framework="numpy") as f:
            for name in f.keys():
                f.get_tensor(name)


def test_the_valid_base_is_read_by_both(tmp_path):
    path = _write(tmp_path / "ok.safetensors", _valid_header(), np.arange(10, dtype=np.float32).tobytes())
    entries, metadata = read_header(path)
    assert metadata == {"format": "np"}
    assert [(e.name, e.shape, e.offset - entries["a"].offset, e.nbytes) for e in entries.values()] == [
        ("a", (4,), 0, 16), ("b", (2, 3), 16, 24)]
    with safe_open(path, framework="numpy") as f:
        assert f.get_tensor("b").tolist() == [[4, 5, 6], [7, 8, 9]]


def test_a_file_written_by_safetensors_is_read_in_its_order(tmp_path):
    tensors = {"z": np.zeros(3, np.float32), "a": np.ones((2, 2), np.int64), "m": np.zeros(0, np.float16),
               "flag": np.array([True, False])}
    save_file(tensors, tmp_path / "s.safetensors", metadata={"k": "v"})
    entries, metadata = read_header(tmp_path / "s.safetensors")
    assert metadata == {"k": "v"} and set(entries) == set(tensors)
    assert {n: e.shape for n, e in entries.items()} == {n: t.shape for n, t in tensors.items()}


def test_negative_offsets_are_refused(tmp_path):
    # Without the check, tensor a would be read from the header's own last 16 bytes.
    header = _valid_header()
    header["a"] = _entry("F32", [4], -16, 0)
    path = _write(tmp_path / "neg.safetensors", header, bytes(40))
    _refused(path, "'a'", "data_offsets [-16, 0]", "non-negative")
    _safetensors_refuses(path)


def test_overlapping_offsets_are_refused(tmp_path):
    header = _valid_header()
    header["b"] = _entry("F32", [2, 3], 8, 32)  # the right size, but over a's last 8 bytes
    path = _write(tmp_path / "overlap.safetensors", header, bytes(40))
    _refused(path, "'b'", "overlaps tensor 'a'", "InvalidOffset")
    _safetensors_refuses(path)


def test_two_tensors_on_the_same_bytes_are_refused(tmp_path):
    header = _valid_header()
    header["b"] = _entry("F32", [4], 0, 16)
    path = _write(tmp_path / "alias.safetensors", header, bytes(16))
    _refused(path, "overlaps", "InvalidOffset")
    _safetensors_refuses(path)


def test_a_gap_between_tensors_is_refused(tmp_path):
    header = _valid_header()
    header["b"] = _entry("F32", [2, 3], 24, 48)
    path = _write(tmp_path / "gap.safetensors", header, bytes(48))
    _refused(path, "'b'", "leaves a gap after tensor 'a'")
    _safetensors_refuses(path)


def test_a_data_area_not_starting_at_zero_is_refused(tmp_path):
    header = {"a": _entry("F32", [4], 8, 24)}
    path = _write(tmp_path / "late.safetensors", header, bytes(24))
    _refused(path, "'a'", "starts at byte 8", "[0, 8) unclaimed")
    _safetensors_refuses(path)


def test_offsets_past_the_end_are_refused(tmp_path):
    header = _valid_header()
    path = _write(tmp_path / "short.safetensors", header, bytes(30))
    _refused(path, "is truncated or its header is corrupt", "'b'", "[16, 40) of a data area of 30 bytes")
    _safetensors_refuses(path)


def test_offsets_beyond_64_bits_are_refused_not_overflowed(tmp_path):
    header = _valid_header()
    header["b"] = _entry("U8", [2**64 - 16], 16, 2**64)
    path = _write(tmp_path / "huge.safetensors", header, bytes(40))
    _refused(path, "'b'", "data_offsets [16, 18446744073709551616]")
    _safetensors_refuses(path)


def test_bytes_after_the_last_tensor_are_refused(tmp_path):
    path = _write(tmp_path / "tail.safetensors", _valid_header(), bytes(48))
    _refused(path, "end at byte 40", "48 bytes follow the header", "MetadataIncompleteBuffer")
    _safetensors_refuses(path)


def test_dtype_times_shape_must_equal_the_byte_count(tmp_path):
    header = _valid_header()
    header["a"] = _entry("F32", [4], 0, 12)
    header["b"] = _entry("F32", [2, 3], 12, 36)
    path = _write(tmp_path / "size.safetensors", header, bytes(36))
    _refused(path, "'a'", "(12 bytes) for shape [4] of F32, which takes 16 bytes")
    _safetensors_refuses(path)


def test_a_shape_whose_size_overflows_is_refused(tmp_path):
    header = {"a": _entry("F32", [2**40, 2**40, 0], 0, 0)}
    path = _write(tmp_path / "overflow.safetensors", header, b"")
    _refused(path, "'a'", "overflows 64 bits")
    _safetensors_refuses(path)


@pytest.mark.parametrize("shape", [[-1, -4], [True, 4], [4.0], ["4"], 4, None])
def test_shapes_must_be_lists_of_non_negative_integers(tmp_path, shape):
    header = _valid_header()
    header["a"]["shape"] = shape
    path = _write(tmp_path / "shape.safetensors", header, bytes(40))
    _refused(path, "'a'", "not a list of non-negative integers")
    _safetensors_refuses(path)


@pytest.mark.parametrize("offsets", [[0.0, 16.0], [0, 16, 32], ["0", "16"], [False, 16], None])
def test_data_offsets_must_be_two_integers(tmp_path, offsets):
    header = _valid_header()
    header["a"]["data_offsets"] = offsets
    path = _write(tmp_path / "offsets.safetensors", header, bytes(40))
    _refused(path, "'a'", "not two non-negative integers")
    _safetensors_refuses(path)


def test_an_entry_that_is_not_an_object_is_refused(tmp_path):
    header = _valid_header()
    header["a"] = [0, 16]
    path = _write(tmp_path / "entry.safetensors", header, bytes(40))
    _refused(path, "'a'", "not an object with dtype, shape and data_offsets")
    _safetensors_refuses(path)


@pytest.mark.parametrize("metadata", [{"step": 3}, ["format", "pt"], "pt"])
def test_metadata_must_map_strings_to_strings(tmp_path, metadata):
    header = _valid_header()
    header["__metadata__"] = metadata
    path = _write(tmp_path / "meta.safetensors", header, bytes(40))
    _refused(path, "__metadata__ is not a map of strings")
    _safetensors_refuses(path)


def test_header_longer_than_safetensors_allows_is_refused(tmp_path):
    assert MAX_HEADER_BYTES == 100_000_000  # safetensors' MAX_HEADER_SIZE
    path = _write(tmp_path / "long.safetensors", b"{}" + b" " * (MAX_HEADER_BYTES - 1), b"")
    _refused(path, "header length 100000001 exceeds the 100000000 bytes safetensors allows")
    _safetensors_refuses(path)


def test_header_longer_than_the_file_is_refused(tmp_path):
    path = tmp_path / "cut.safetensors"
    path.write_bytes(struct.pack("<Q", 1000) + b'{"a": 1}')
    _refused(path, "header length 1000 does not fit the file's 16 bytes")
    _safetensors_refuses(path)


def test_deeply_nested_json_is_refused_before_parsing(tmp_path):
    deep = b'{"a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    path = _write(tmp_path / "deep.safetensors", deep, b"")
    _refused(path, f"nests more than {MAX_JSON_DEPTH} levels deep")
    _safetensors_refuses(path)


def test_nesting_deeper_than_the_limit_is_refused_even_in_an_ignored_field(tmp_path):
    # Python parses 100 levels without a RecursionError, and an unknown field would be ignored.
    header = _valid_header()
    header["a"]["extra"] = json.loads("[" * 100 + "]" * 100)
    path = _write(tmp_path / "deep100.safetensors", header, bytes(40))
    _refused(path, f"nests more than {MAX_JSON_DEPTH} levels deep")


def test_brackets_and_escapes_inside_names_do_not_count_as_nesting(tmp_path):
    name = 'w[[[[{{{{\\"' + "[" * 100 + '\\\\'
    header = {name: _entry("F32", [1], 0, 4)}
    path = _write(tmp_path / "names.safetensors", header, bytes(4))
    entries, _ = read_header(path)
    assert list(entries) == [name]
    with safe_open(path, framework="numpy") as f:
        assert list(f.keys()) == [name]


def _depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def test_json_depth_matches_the_parsed_depth_on_random_documents():
    rng = np.random.default_rng(0)
    alphabet = ['"', "\\", "[", "]", "{", "}", "a", "é", "\n"]

    def value(level):
        kind = rng.integers(0, 4 if level < 12 else 2)
        if kind == 0:
            return int(rng.integers(-5, 5))
        if kind == 1:
            return "".join(rng.choice(alphabet, size=int(rng.integers(0, 6))))
        if kind == 2:
            return [value(level + 1) for _ in range(int(rng.integers(0, 3)))]
        return {"".join(rng.choice(alphabet, size=3)): value(level + 1) for _ in range(int(rng.integers(0, 3)))}

    for _ in range(300):
        document = value(0)
        for ensure_ascii in (True, False):
            raw = json.dumps(document, ensure_ascii=ensure_ascii).encode()
            assert json_depth(raw, limit=10**6, block=7) == _depth(document), raw


@pytest.mark.parametrize("header", [[1, 2], "tensors", 3, None])
def test_a_header_that_is_not_an_object_is_refused(tmp_path, header):
    path = _write(tmp_path / "list.safetensors", header, b"")
    _refused(path, "not an object of tensors")
    _safetensors_refuses(path)


def test_a_header_that_is_not_utf8_is_refused(tmp_path):
    path = _write(tmp_path / "latin.safetensors", '{"\xe9": {}}'.encode("latin-1"), b"")
    _refused(path, "not UTF-8")
    _safetensors_refuses(path)


def test_a_large_header_is_read(tmp_path):
    n = 20_000
    header = {f"model.layers.{i}.weight": _entry("BF16", [2], 4 * i, 4 * i + 4) for i in range(n)}
    path = _write(tmp_path / "many.safetensors", header, bytes(4 * n))
    entries, _ = read_header(path)
    assert list(entries) == list(header) and entries[f"model.layers.{n - 1}.weight"].nbytes == 4


# --- sharded checkpoints: the index must name files of its own folder -----------------------------


def _sharded(folder: Path, weight_map: dict, shards: dict[str, dict] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for shard, tensors in (shards or {}).items():
        save_file(tensors, folder / shard)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


def _index_refused(folder: Path, *needles: str) -> str:
    with pytest.raises(CheckpointError) as info:
        Checkpoint(folder)
    message = str(info.value)
    assert "model.safetensors.index.json" in message and "re-download the checkpoint" in message, message
    for needle in needles:
        assert needle in message, message
    return message


@pytest.fixture
def outside(tmp_path) -> Path:
    """A valid safetensors file outside the checkpoint folder (what a hostile index points to)."""
    (tmp_path / "elsewhere").mkdir()
    save_file({"w": np.ones(4, np.float32)}, tmp_path / "elsewhere" / "model.safetensors")
    return tmp_path / "elsewhere" / "model.safetensors"


def test_a_valid_sharded_folder_is_read(tmp_path):
    shards = {"model-00001.safetensors": {"w": np.ones(4, np.float32)},
              "model-00002.safetensors": {"v": np.zeros(2, np.float32)}}
    folder = _sharded(tmp_path / "ckpt", {"w": "model-00001.safetensors", "v": "model-00002.safetensors"}, shards)
    assert set(Checkpoint(folder).entries) == {"w", "v"}


def test_index_shard_with_dotdot_is_refused(tmp_path, outside):
    folder = _sharded(tmp_path / "ckpt", {"w": "../elsewhere/model.safetensors"})
    _index_refused(folder, "'../elsewhere/model.safetensors'", "not a plain relative file name")


@pytest.mark.parametrize("shard", ["./model.safetensors", "sub//model.safetensors", "", "C:model.safetensors",
                                   "..\\elsewhere\\model.safetensors"])
def test_index_shard_names_must_be_plain(tmp_path, shard):
    folder = _sharded(tmp_path / "ckpt", {"w": shard})
    _index_refused(folder, "not a plain relative file name")


def test_absolute_index_shard_path_is_refused(tmp_path, outside):
    folder = _sharded(tmp_path / "ckpt", {"w": str(outside)})
    _index_refused(folder, repr(str(outside)), "not a plain relative file name")


def test_symlinked_shard_escaping_the_folder_is_refused(tmp_path, outside):
    folder = _sharded(tmp_path / "ckpt", {"w": "model.safetensors"})
    (folder / "model.safetensors").symlink_to(outside)
    _index_refused(folder, "shard model.safetensors", f"resolves to {outside}", "outside")


def test_shard_in_a_symlinked_subfolder_escaping_the_folder_is_refused(tmp_path, outside):
    folder = _sharded(tmp_path / "ckpt", {"w": "sub/model.safetensors"})
    (folder / "sub").symlink_to(outside.parent, target_is_directory=True)
    _index_refused(folder, "resolves to", "outside")


def test_symlinks_inside_the_folder_and_into_the_hub_cache_blobs_are_followed(tmp_path):
    inside = _sharded(tmp_path / "ckpt", {"w": "model.safetensors"}, {"real.safetensors": {"w": np.ones(2)}})
    (inside / "model.safetensors").symlink_to("real.safetensors")
    assert Checkpoint(inside).entries["w"].shape == (2,)
    # The Hugging Face cache: snapshots/<commit>/<file> links to ../../blobs/<hash>.
    repo = tmp_path / "hub" / "models--org--name"
    (repo / "blobs").mkdir(parents=True)
    save_file({"w": np.ones(3, np.float32)}, repo / "blobs" / "0123abcd")
    snapshot = _sharded(repo / "snapshots" / "f00d", {"w": "model-00001.safetensors"})
    (snapshot / "model-00001.safetensors").symlink_to("../../blobs/0123abcd")
    assert Checkpoint(snapshot).entries["w"].shape == (3,)


@pytest.mark.parametrize("weight_map", [["model.safetensors"], {"w": 1}, {"w": None}, "model.safetensors"])
def test_a_weight_map_that_is_not_names_to_file_names_is_refused(tmp_path, weight_map):
    folder = _sharded(tmp_path / "ckpt", weight_map, {"model.safetensors": {"w": np.ones(4, np.float32)}})
    _index_refused(folder, "weight_map is not a map of tensor names to shard file names")


def test_an_index_that_is_not_json_is_refused(tmp_path):
    folder = _sharded(tmp_path / "ckpt", {})
    (folder / "model.safetensors.index.json").write_text('{"weight_map": ')
    _index_refused(folder, "cannot read a safetensors index")


# --- the diff: tensors whose dtypes are of different kinds are reported, never compared -------------


def _pair(tmp_path: Path, before: dict, after: dict) -> tuple[Path, Path]:
    save_file(before, tmp_path / "before.safetensors")
    save_file(after, tmp_path / "after.safetensors")
    return tmp_path / "before.safetensors", tmp_path / "after.safetensors"


@pytest.mark.parametrize("other", [np.array([True, False, True]), np.array([0, 1, 0], dtype=np.int64),
                                   np.array([0, 1, 0], dtype=np.uint8)])
def test_tensors_of_different_dtype_kinds_are_a_status_row_not_values(tmp_path, other):
    w = np.zeros(4, np.float32)
    before, after = _pair(tmp_path, {"w": w, "m": np.zeros(3, np.float32)}, {"w": w, "m": other})
    table = diff_checkpoints(before, after)
    row = table.set_index("name").loc["m"]
    assert row["status"] == "dtype_mismatch"
    after_dtype = {"bool": "BOOL", "int64": "I64", "uint8": "U8"}[other.dtype.name]
    assert (row["dtype"], row["dtype_after"]) == ("F32", after_dtype)
    assert row["numel"] == 0 and row["numel_skipped"] == 3
    assert all(row[c] == 0 for c in table.columns if c.startswith("unchanged_"))  # never compared
    assert skipped(table) == [{"name": "m", "status": "dtype_mismatch", "numel_skipped": 3}]
    # Sparsity counts w only: all 4 entries unchanged (m's zeros vs other's would have counted 1 or 2 of 3).
    assert table.loc[table["status"] == "compared", "numel"].sum() == 4
    assert sparsity(table) == {label: 1.0 for label in sparsity(table)}


def test_integer_widths_are_compared_and_signedness_is_a_kind(tmp_path):
    before, after = _pair(tmp_path, {"i": np.arange(3, dtype=np.int32), "u": np.arange(3, dtype=np.int8)},
                          {"i": np.arange(3, dtype=np.int64), "u": np.arange(3, dtype=np.uint8)})
    status = dict(zip(*diff_checkpoints(before, after)[["name", "status"]].T.values))
    assert status == {"i": "compared", "u": "dtype_mismatch"}


def test_floats_of_different_widths_are_still_compared(tmp_path):
    import torch
    from safetensors.torch import save_file as save_torch

    start = torch.tensor([1.0, 2.0, 3.0, 4.0])
    save_torch({"w": start, "h": start.half()}, tmp_path / "before.safetensors")
    save_torch({"w": start.bfloat16(), "h": start.bfloat16()}, tmp_path / "after.safetensors")
    table = diff_checkpoints(tmp_path / "before.safetensors", tmp_path / "after.safetensors")
    assert set(table["status"]) == {"compared"} and skipped(table) == []
    assert sparsity(table)["exact"] == 1.0
