"""Dataset sources: synthetic (default), hub loader (datasets.load_dataset on a local folder), Parquet."""

import pandas as pd
import pytest

from subnet_rl.data import COLUMNS, build_dataset, write_dataset


def test_synthetic_columns_and_sizes(tmp_path):
    splits = build_dataset({"source": "synthetic", "digits": 2, "n_train": 300, "n_test": 50, "seed": 0})
    assert list(splits["train"].columns) == COLUMNS
    assert (len(splits["train"]), len(splits["test"])) == (300, 50)
    assert (splits["train"]["chosen"] == splits["train"]["answer"]).all()
    assert (splits["train"]["rejected"] != splits["train"]["answer"]).all()
    out = {"train": tmp_path / "d" / "train.parquet", "test": tmp_path / "d" / "test.parquet"}
    write_dataset(splits, out)
    pd.testing.assert_frame_equal(pd.read_parquet(out["train"]), splits["train"])


def _source_frames():
    train = pd.DataFrame({"question": ["1+1=", "2+2="], "solution": ["2", "4"], "extra": [1, 2]})
    test = pd.DataFrame({"question": ["3+3="], "solution": ["6"], "extra": [3]})
    return train, test


def test_hub_source_through_load_dataset_on_a_local_folder(tmp_path):
    folder = tmp_path / "hub_like"
    (folder / "data").mkdir(parents=True)
    train, test = _source_frames()
    train.to_parquet(folder / "data" / "train-00000-of-00001.parquet")
    test.to_parquet(folder / "data" / "test-00000-of-00001.parquet")
    splits = build_dataset({"source": "hub", "path": str(folder), "cache_dir": str(tmp_path / "cache"),
                            "columns": {"prompt": "question", "answer": "solution"}})
    assert list(splits["train"]["prompt"]) == ["1+1=", "2+2="]
    assert list(splits["test"]["answer"]) == ["6"] and list(splits["test"].columns) == COLUMNS


def test_parquet_source_and_missing_column_message(tmp_path):
    train, test = _source_frames()
    train.to_parquet(tmp_path / "tr.parquet")
    test.to_parquet(tmp_path / "te.parquet")
    files = {"train": str(tmp_path / "tr.parquet"), "test": str(tmp_path / "te.parquet")}
    splits = build_dataset({"source": "parquet", "files": files, "columns": {"prompt": "question", "answer": "solution"}})
    assert list(splits["train"]["answer"]) == ["2", "4"]
    with pytest.raises(ValueError, match=r"no column for \['prompt', 'answer'\].*columns:"):
        build_dataset({"source": "parquet", "files": files})
    with pytest.raises(FileNotFoundError, match="files.train"):
        build_dataset({"source": "parquet", "files": {**files, "train": str(tmp_path / "nope.parquet")}})
