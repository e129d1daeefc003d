"""Reading what an upstream stage wrote, with checks: a bad file is named with the rule that writes it.

Every stage that reads another stage's Parquet, CSV or JSON output reads it through this module. A file
that is missing, cannot be read (corrupt or truncated Parquet, broken JSON) or lacks the columns its
reader needs raises `StageOutputError`: the message names the file, what is wrong, the rule that writes it
(from the results/ layout, `PRODUCERS`) and the fix. `stage_checks` adds what needs the checkpoints (a
diff table holds one row per tensor of the pair it compares) and the check run before each presentation
rule. This module imports nothing else of subnet_rl: the expensive stages that read through it (scoring,
preference sampling) rerun when its code changes, so it stays small.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

#: The rule writing each kind of path under results/, as `workflow/rules/*.smk` declare them: the first
#: pattern that matches the end of a path wins ("a|b" where the configuration decides which rule).
#: `{group}` in a rule name is filled from the pattern's named group; a file inside a folder output (a
#: checkpoint's training.json) names the folder as what to delete (group `folder`).
PRODUCERS: tuple[tuple[str, str], ...] = (
    (r"results/data/[^/]+/(?:train|test)\.parquet", "dataset"),
    (r"results/downloads/[^/]+\.json", "download_checkpoint"),
    (r"(?P<folder>results/checkpoints/base/init)(?:/.+)?", "build_model|fetch_model"),
    (r"(?P<folder>results/checkpoints/base/start)(?:/.+)?", "warmup|build_model|fetch_model"),
    (r"(?P<folder>results/checkpoints/base/[^/]+)(?:/.+)?", "fetch_model"),
    (r"(?P<folder>results/checkpoints/full/[^/]+)(?:/.+)?", "train_full"),
    (r"(?P<folder>results/checkpoints/subnet/[^/]+)(?:/.+)?", "train_subnetwork"),
    (r"(?P<folder>results/checkpoints/random/[^/]+)(?:/.+)?", "train_random_subnetwork"),
    (r"results/pairs/[^/]+/[^/]+\.parquet", "preference_pairs"),
    (r"results/pairs_off_policy/[^/]+/[^/]+\.parquet", "off_policy_pairs"),
    (r"results/diff/[^/]+/[^/]+\.parquet", "diff"),
    (r"results/masks/random/[^/]+\.safetensors", "random_mask"),
    (r"results/masks/[^/]+\.safetensors", "mask"),
    (r"results/eval/[^/]+/[^/]+/[^/]+\.parquet", "evaluate"),
    (r"results/overlap/pairs\.parquet", "overlap"),
    (r"results/rank/[^/]+\.parquet", "rank"),
    (r"results/ulp/[^/]+\.parquet", "ulp"),
    (r"results/dynamics/[^/]+/(?:steps|split)\.parquet", "dynamics"),
    (r"results/tables/(?:sparsity|subnetwork|overlap)\.(?:md|csv|tex)", "tables"),
    (r"results/tables/(?:pairs|pairs_layers)\.(?:md|csv|tex)", "pairs_table"),
    (r"results/tables/start_models\.(?:md|csv|tex)", "start_models_table"),
    (r"results/tables/(?:rank|layers|ulp|ulp_summary)\.(?:md|csv|tex)", "analysis_tables"),
    (r"results/tables/(?:step_sparsity|step_sparsity_summary)\.(?:md|csv|tex)", "step_sparsity_table"),
    (r"results/tables/(?:algorithms|controls|frontier|ablations|precision|data|dynamics|dynamics_split)\.(?:md|csv|tex)",
     "comparison_tables"),
    (r"results/tables/checks/[^/]+\.json", "check_inputs"),
    (r"results/figures/(?P<figure>[^/]+)\.(?:png|pdf)", "figure_{figure}"),
    (r"results/findings\.(?:csv|md)", "findings"),
)
_PRODUCERS = [(re.compile(rf"(?:^|/){pattern}$"), rule) for pattern, rule in PRODUCERS]
#: A diff table's path: results/diff/<variant>/<name>.parquet (the `diff` rule's wildcards).
DIFF_PATH = re.compile(r"results/diff/(?P<variant>[^/]+)/(?P<name>[^/]+)\.parquet")
#: Columns every diff table has (`diff._row`); the criterion columns `unchanged_*` come on top.
DIFF_COLUMNS = ("name", "role", "status", "numel")
#: The marker a presentation rule takes as input: its other inputs were read and found good.
CHECKS = "results/tables/checks/{stage}.json"


class StageOutputError(ValueError):
    """An upstream output that cannot be used; the message names it, the rule that writes it and the fix."""


def checks_of(stage: str) -> str:
    """The `check_inputs` marker of a rule: an input of that rule, written once its other inputs pass."""
    return CHECKS.format(stage=stage)


def _match(path: str | os.PathLike) -> tuple[list[str], str]:
    """The rules that can write `path` and the output to delete to remake it (the folder, for a file in a
    folder output)."""
    text = Path(path).as_posix()
    for pattern, rule in _PRODUCERS:
        match = pattern.search(text)
        if match:
            output = text[: match.end("folder")] if match.groupdict().get("folder") else text
            return rule.format(**match.groupdict()).split("|"), output
    return [], text


def producer(path: str | os.PathLike) -> list[str]:
    """The rules that can write `path` (one, or several where the configuration decides); [] when no rule
    of the workflow does (a user's checkpoint, a file outside results/)."""
    return _match(path)[0]


def _fix(path: str | os.PathLike) -> str:
    rules, output = _match(path)
    if not rules:
        return "it is not an output of this workflow; fix or replace it"
    written = " or ".join(f"`{r}`" for r in rules)
    target = "it" if output == Path(path).as_posix() else f"the folder {output}"
    return f"it is written by rule {written}; delete {target} and rerun snakemake"


def stage_error(path: str | os.PathLike, problem: str) -> StageOutputError:
    """`<path> <problem>: it is written by rule `<rule>`; delete it and rerun snakemake`."""
    return StageOutputError(f"{path} {problem}: {_fix(path)}")


def check_exists(path: str | os.PathLike) -> None:
    if not Path(path).exists():
        raise stage_error(path, "does not exist")


def _with_columns(df: pd.DataFrame, path: str | os.PathLike, columns: Iterable[str]) -> pd.DataFrame:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise stage_error(path, f"lacks the columns {missing} (it has {list(df.columns)})")
    return df


def read_parquet(path: str | os.PathLike, columns: Iterable[str] = ()) -> pd.DataFrame:
    """An upstream Parquet table, all of its columns; `columns` must be among them."""
    check_exists(path)
    try:
        df = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types (ArrowInvalid, OSError, ...) for a bad file
        raise stage_error(path, f"cannot be read as Parquet ({type(err).__name__}: {err})") from err
    return _with_columns(df, path, columns)


def read_csv(path: str | os.PathLike, columns: Iterable[str] = ()) -> pd.DataFrame:
    """An upstream CSV table; an empty file (how a table without rows is written) is an empty frame."""
    check_exists(path)
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except Exception as err:
        raise stage_error(path, f"cannot be read as CSV ({type(err).__name__}: {err})") from err
    return _with_columns(df, path, columns)


def read_tables(paths: Iterable[str | os.PathLike]) -> dict[str, pd.DataFrame]:
    """The CSV tables at `paths` keyed by file stem (what the findings and figures read), each read with checks."""
    return {Path(p).stem: read_csv(p) for p in paths}


def read_json(path: str | os.PathLike, keys: Iterable[str] = ()) -> dict:
    """An upstream JSON record (a download record, a run's training.json); `keys` must be in it."""
    check_exists(path)
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise stage_error(path, f"cannot be read as JSON ({type(err).__name__}: {err})") from err
    if not isinstance(record, dict):
        raise stage_error(path, f"holds a JSON {type(record).__name__}, not an object")
    missing = [k for k in keys if k not in record]
    if missing:
        raise stage_error(path, f"lacks the keys {missing}")
    return record


def read_diff(path: str | os.PathLike) -> pd.DataFrame:
    """A diff table (`diff` rule): readable, with the columns every diff table has and criterion counts.
    `stage_checks.check_diff_table` also holds it against the checkpoints it compares."""
    table = read_parquet(path, DIFF_COLUMNS)
    if not any(c.startswith("unchanged_") for c in table.columns):
        raise stage_error(path, "holds no unchanged_* counts (no criterion columns)")
    return table
