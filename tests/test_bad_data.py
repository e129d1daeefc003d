"""Bad dataset rows get a clear error naming dataset, split, row and column, before any job (Parquet) or
when the dataset job loads them (hub); `invalid_rows: drop` drops them and counts them in the log.
Hub ids that cannot be had offline fail with one message naming the id, the key and the fix."""

from pathlib import Path

import pandas as pd
import pytest
import yaml

from subnet_rl.config import check_references
from subnet_rl.data import build_dataset, synthetic_addition
from subnet_rl.dataset_rows import prepare_splits
from subnet_rl.models import HubUnavailable, fetch_pretrained

CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
GSM_COLUMNS = {"prompt": "question", "answer": "solution"}


def _files(tmp_path, train: pd.DataFrame, test: pd.DataFrame) -> dict[str, str]:
    files = {"train": str(tmp_path / "train.parquet"), "test": str(tmp_path / "test.parquet")}
    train.to_parquet(files["train"])
    test.to_parquet(files["test"])
    return files


def _gsm(questions, solutions) -> pd.DataFrame:
    return pd.DataFrame({"question": questions, "solution": solutions})


_TEST = _gsm(["What is 5 + 5?"], ["#### 10"])


def _entry(files, task="gsm8k", columns=GSM_COLUMNS, **extra) -> dict:
    return {"source": "parquet", "task": task, "files": files, "columns": dict(columns), **extra}


def _validate(entry: dict) -> None:
    """What the Snakefile does when it is parsed: the default config plus this dataset as `mine`."""
    config = yaml.safe_load(CONFIG.read_text())
    config["datasets"]["mine"] = entry
    check_references(config)


def _refused_both_ways(entry: dict, pattern: str) -> None:
    """The same message at validation (parse time) and from the dataset job (build_dataset)."""
    with pytest.raises(ValueError, match=pattern):
        _validate(entry)
    with pytest.raises(ValueError, match=pattern):
        build_dataset(entry, "mine")


def test_null_answer_is_refused_at_validation(tmp_path):
    # task math: str(None) would have been a gold answer ("None"/"nan"), and SFT would train on it
    files = _files(tmp_path, _gsm(["a?", "b?", "c?"], ["\\boxed{1}", None, "\\boxed{3}"]),
                   _gsm(["d?"], ["\\boxed{4}"]))
    _refused_both_ways(_entry(files, task="math"),
                       r"datasets\.mine\.files\.train \(.*train\.parquet\): row 1 has a null 'answer' "
                       r"\(column 'solution'\); fix the file, or set `datasets\.mine\.invalid_rows: drop`")


def test_nan_in_a_number_answer_column_is_null(tmp_path):
    files = _files(tmp_path, _gsm(["a?", "b?"], [float("nan"), 2.0]), _gsm(["c?"], [3]))
    _refused_both_ways(_entry(files), r"files\.train .*: row 0 has a null 'answer'")


def test_empty_prompt_is_refused_at_validation(tmp_path):
    files = _files(tmp_path, _gsm(["What is 1 + 1?", "  \n"], ["#### 2", "#### 3"]), _TEST)
    _refused_both_ways(_entry(files), r"files\.train .*: row 1 has an empty 'prompt' \(column 'question'\)")


def test_number_answers_are_accepted_as_text(tmp_path):
    """GSM8K-like files often hold the final answer as an int column: kept, written as text."""
    files = _files(tmp_path, _gsm(["What is 3 + 4?", "What is 9 * 8?"], [7, 72]), _gsm(["What is 1 + 0?"], [1]))
    _validate(_entry(files))
    splits = build_dataset(_entry(files), "mine")
    assert list(splits["train"]["answer"]) == ["7", "72"] and list(splits["test"]["answer"]) == ["1"]
    # an int column with a null reads back as floats: 7.0 is written "7", as an addition answer must be
    files = _files(tmp_path, pd.DataFrame({"prompt": ["3+4=", "1+1=", "2+2="], "answer": [7, None, 4]}),
                   pd.DataFrame({"prompt": ["5+5="], "answer": ["01"]}))
    splits = build_dataset({"source": "parquet", "task": "addition", "files": files, "invalid_rows": "drop"}, "mine")
    assert list(splits["train"]["answer"]) == ["7", "4"]


@pytest.mark.parametrize("frame,pattern", [
    (pd.DataFrame({"question": [1, 2], "solution": ["#### 1", "#### 2"]}),
     r"row 0 has a non-text 'prompt' \(column 'question'\): int(64)? 1; it must be text;"),
    (pd.DataFrame({"question": ["a?", "b?"], "solution": [["#### 1"], ["#### 2"]]}),
     r"row 0 has a non-text 'answer' \(column 'solution'\): ndarray \['#### 1'\]; it must be text or a number;"),
    (pd.DataFrame({"question": ["a?", "b?"], "solution": [True, False]}),
     r"row 0 has a non-text 'answer' \(column 'solution'\): bool_? (np\.)?True"),
], ids=["int-prompt", "list-answer", "bool-answer"])
def test_non_text_prompt_or_answer_is_refused(tmp_path, frame, pattern):
    files = _files(tmp_path, frame, _TEST)
    _refused_both_ways(_entry(files), r"files\.train .*: " + pattern)


def test_chat_conversation_prompt_is_valid_unless_empty(tmp_path):
    turn = lambda text: [{"role": "user", "content": text}]  # noqa: E731
    frame = pd.DataFrame({"question": [turn("What is 2 + 2?"), turn(" ")], "solution": ["#### 4", "#### 0"]})
    files = _files(tmp_path, frame, _TEST)
    _refused_both_ways(_entry(files, prompt_format="chat"), r"files\.train .*: row 1 has an empty 'prompt'")
    files = _files(tmp_path, frame.iloc[:1], _TEST)
    _validate(_entry(files, prompt_format="chat"))
    assert build_dataset(_entry(files, prompt_format="chat"))["train"]["prompt"][0] == turn("What is 2 + 2?")


def test_null_preference_answer_is_refused(tmp_path):
    train = pd.DataFrame({"q": ["a?", "b?"], "good": ["yes", None], "bad": ["no", "no"]})
    files = _files(tmp_path, train, pd.DataFrame({"q": ["c?"], "good": ["yes"], "bad": ["no"]}))
    _refused_both_ways(_entry(files, task="preference", columns={"prompt": "q", "chosen": "good", "rejected": "bad"}),
                       r"files\.train .*: row 1 has a null 'chosen' answer \(column 'good'\)")


def test_zero_row_split_is_refused_at_validation_whatever_the_setting(tmp_path):
    files = _files(tmp_path, _gsm(pd.Series([], dtype=str), pd.Series([], dtype=str)), _TEST)
    pattern = r"datasets\.mine\.files\.train \(.*train\.parquet\): has no rows; a split needs at least one"
    _refused_both_ways(_entry(files), pattern)
    _refused_both_ways(_entry(files, invalid_rows="drop"), pattern)


def test_duplicate_prompt_in_a_split_is_refused(tmp_path):
    files = _files(tmp_path, _gsm(["a?", "b?", "a?"], ["#### 1", "#### 2", "#### 3"]), _TEST)
    _refused_both_ways(_entry(files), r"files\.train .*: row 2 repeats the prompt of row 0 \(column 'question'\); "
                                      r"fix the file, or set `datasets\.mine\.invalid_rows: drop` to keep only "
                                      r"the first")


def test_preference_data_may_repeat_a_prompt_but_not_a_pair(tmp_path):
    columns = {"prompt": "q", "chosen": "good", "rejected": "bad"}
    test = pd.DataFrame({"q": ["z?"], "good": ["yes"], "bad": ["no"]})
    files = _files(tmp_path, pd.DataFrame({"q": ["a?", "a?"], "good": ["yes", "sure"], "bad": ["no", "no"]}), test)
    _validate(_entry(files, task="preference", columns=columns))  # two pairs for one prompt: normal
    files = _files(tmp_path, pd.DataFrame({"q": ["a?", "a?"], "good": ["yes", "yes"], "bad": ["no", "no"]}), test)
    _refused_both_ways(_entry(files, task="preference", columns=columns),
                       r"files\.train .*: row 1 repeats the prompt, chosen and rejected answers of row 0")


def test_prompt_in_train_and_test_is_refused_as_leakage(tmp_path):
    files = _files(tmp_path, _gsm(["a?", "b?", "c?"], ["#### 1", "#### 2", "#### 3"]),
                   _gsm(["d?", "b?"], ["#### 4", "#### 2"]))
    _refused_both_ways(_entry(files), r"datasets\.mine\.files\.train \(.*\): row 1 has the same prompt as row 1 of "
                                      r"datasets\.mine\.files\.test \(.*\) \(test leakage; 1 shared\)")


def test_a_test_split_that_is_the_train_data_is_deliberate_not_leakage(tmp_path, capsys):
    """The same file (or a copy) for both splits is a choice (evaluate on the training data), noted in the log."""
    frame = _gsm(["a?", "b?"], ["#### 1", "#### 2"])
    files = _files(tmp_path, frame, frame)
    _validate(_entry(files))
    assert len(build_dataset(_entry(files), "mine")["test"]) == 2
    assert "every test prompt is also in train" in capsys.readouterr().out
    _validate(_entry({"train": files["train"], "test": files["train"]}))
    # a test file that is part of a different train file is leakage (only a hub split slice may be a part)
    files = _files(tmp_path, frame, frame.iloc[:1])
    with pytest.raises(ValueError, match="test leakage"):
        _validate(_entry(files))


def test_drop_setting_drops_and_counts_invalid_rows(tmp_path, capsys):
    train = _gsm(["a?", "b?", " ", "a?", "c?", "d?", "e?", "f?"],
                 ["#### 1", None, "#### 3", "#### 4", "#### 5", "no number", "#### 7", "#### 8"])
    test = _gsm(["e?", "g?", None], ["#### 7", "#### 9", "#### 0"])
    files = _files(tmp_path, train, test)
    entry = _entry(files, invalid_rows="drop")
    _validate(entry)  # drop: nothing refused at validation
    splits = build_dataset(entry, "mine")
    assert list(splits["train"]["prompt"]) == ["a?", "c?", "f?"]
    assert list(splits["test"]["prompt"]) == ["e?", "g?"]  # the test split keeps the leaked prompt
    log = capsys.readouterr().out
    assert ("datasets.mine.files.train (" in log and "): dropped 5 of 8 rows (" in log
            and all(part in log for part in ("1 null 'answer'", "1 empty 'prompt'", "1 answer without a gold answer",
                                             "1 duplicate prompt", "1 prompt also in test")))
    assert "): dropped 1 of 3 rows (1 null 'prompt')" in log
    # a split that ends with no rows is still an error, at validation
    files = _files(tmp_path, _gsm(["a?", " "], [None, "#### 2"]), _TEST)
    with pytest.raises(ValueError, match=r"files\.train .*: all 2 rows are invalid \(1 null 'answer', 1 empty "
                                         r"'prompt'\); fix the file"):
        _validate(_entry(files, invalid_rows="drop"))


def test_error_names_how_many_rows_have_problems(tmp_path):
    files = _files(tmp_path, _gsm(["a?", "b?", "c?"], [None, None, "#### 3"]), _TEST)
    _refused_both_ways(_entry(files), r"row 0 has a null 'answer'.*\(2 rows of this split have problems: 2 null")


def test_hub_dataset_rows_are_checked_by_the_dataset_job(tmp_path):
    """A hub dataset cannot be read at validation; its job refuses bad rows with the same message."""
    folder = tmp_path / "hub_like" / "data"
    folder.mkdir(parents=True)
    _gsm(["a?", "b?"], ["#### 1", None]).to_parquet(folder / "train-00000-of-00001.parquet")
    _TEST.to_parquet(folder / "test-00000-of-00001.parquet")
    entry = {"source": "hub", "path": str(folder.parent), "cache_dir": str(tmp_path / "cache"), "task": "gsm8k",
             "columns": GSM_COLUMNS}
    _validate(entry)  # nothing downloaded or read at validation
    with pytest.raises(ValueError, match=r"datasets\.mine\.splits\.train \(.*hub_like split 'train'\): row 1 has a "
                                         r"null 'answer' \(column 'solution'\); fix the dataset, or set "
                                         r"`datasets\.mine\.invalid_rows: drop`"):
        build_dataset(entry, "mine")
    assert list(build_dataset({**entry, "invalid_rows": "drop"}, "mine")["train"]["prompt"]) == ["a?"]


def test_hub_split_slice_of_train_is_not_leakage(tmp_path):
    """`test: train[:1]` (a preference set with one split) takes test from train on purpose."""
    folder = tmp_path / "hub_like" / "data"
    folder.mkdir(parents=True)
    _gsm(["a?", "b?"], ["#### 1", "#### 2"]).to_parquet(folder / "train-00000-of-00001.parquet")
    entry = {"source": "hub", "path": str(folder.parent), "cache_dir": str(tmp_path / "cache"), "task": "gsm8k",
             "columns": GSM_COLUMNS, "splits": {"train": "train", "test": "train[:1]"}}
    assert list(build_dataset(entry, "mine")["test"]["prompt"]) == ["a?"]


def test_the_embedded_synthetic_default_has_no_invalid_rows():
    """The default data would pass every check unchanged (it is generated, so it is not re-checked)."""
    spec = yaml.safe_load(CONFIG.read_text())["datasets"]["addition"]
    splits = synthetic_addition(spec["digits"], spec["n_train"], spec["n_test"], spec["seed"])
    checked, counts, note = prepare_splits(
        {s: f[["prompt", "answer"]] for s, f in splits.items()}, task="addition", where={"train": "t", "test": "e"},
        sources={}, setting="invalid_rows", fix="fix")
    assert note is None and not any(counts.values())
    for split in ("train", "test"):
        pd.testing.assert_frame_equal(checked[split], splits[split][["prompt", "answer"]])
    pd.testing.assert_frame_equal(build_dataset(spec)["train"], splits["train"])


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=1 (as the workflow sets it when nothing uses the hub) and an empty cache folder."""
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    return cache


def test_hub_dataset_missing_offline_names_id_key_and_fix(tmp_path, offline):
    entry = {"source": "hub", "path": "someorg/no-such-dataset", "name": "main", "cache_dir": str(offline),
             "task": "gsm8k", "columns": GSM_COLUMNS}
    with pytest.raises(HubUnavailable) as caught:
        build_dataset(entry, "gsm")
    message = str(caught.value)
    assert message.startswith("datasets.gsm.path: hub dataset 'someorg/no-such-dataset' is not available: ")
    assert "this process is offline (HF_HUB_OFFLINE=1" in message and str(offline) in message
    assert "pre-download it into that cache" in message and "check the id" in message
    assert "`datasets.load_dataset('someorg/no-such-dataset', 'main')`" in message


def test_hub_model_missing_offline_names_id_key_and_fix(tmp_path, offline):
    with pytest.raises(HubUnavailable) as caught:
        fetch_pretrained("hub", "someorg/no-such-model", tmp_path / "out", revision="v1", cache_dir=str(offline),
                         config_key="models.big.name")
    message = str(caught.value)
    assert message.startswith("models.big.name: hub model 'someorg/no-such-model' at revision 'v1' is not available")
    assert "this process is offline (HF_HUB_OFFLINE=1" in message and str(offline) in message
    assert f"hf download someorg/no-such-model --revision v1 --cache-dir {offline}" in message
    assert "LocalEntryNotFoundError" in message and not (tmp_path / "out").exists()
