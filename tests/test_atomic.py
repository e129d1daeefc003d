import pytest

from subnet_rl.atomic import atomic_path, write_text


class Killed(Exception):
    pass


def test_failed_write_leaves_no_output_and_no_debris(tmp_path):
    final = tmp_path / "result.txt"
    with pytest.raises(Killed):
        with atomic_path(final) as tmp:
            tmp.write_text("half")
            raise Killed
    assert list(tmp_path.iterdir()) == []


def test_failed_folder_write_keeps_the_previous_complete_folder(tmp_path):
    final = tmp_path / "ckpt"
    with atomic_path(final, directory=True) as tmp:
        (tmp / "model.safetensors").write_text("v1")
    with pytest.raises(Killed):
        with atomic_path(final, directory=True) as tmp:
            (tmp / "model.safetensors").write_text("v2-partial")
            raise Killed
    assert (final / "model.safetensors").read_text() == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_successful_write_replaces(tmp_path):
    final = tmp_path / "t.md"
    write_text("one", final)
    write_text("two", final)
    assert final.read_text() == "two"
