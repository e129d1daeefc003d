"""Checks of a stage's upstream outputs before the stage runs, and diff tables against their checkpoints.

The presentation rules (tables, figures, findings) take `stage_outputs.checks_of(<rule>)` as an input: a
job of rule `check_inputs` (workflow/rules/tables.smk) runs `check_stage_inputs` on the rule's other
inputs first. Snakemake deletes a job's old outputs when the job starts, so a bad upstream file stops the
workflow at that check, naming the file and the rule to rerun, and the last good tables, figures and
findings stay as they were. Only headers of checkpoints are read: milliseconds for any model size.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from .checkpoints import Checkpoint, CheckpointError
from .diff import pair_tensors
from .diff.criteria import COLUMN_PREFIX
from .stage_outputs import (DIFF_PATH, StageOutputError, check_exists, read_csv, read_diff, read_json, read_parquet,
                            stage_error)
from .step_sparsity_records import COLUMNS as STEP_SPARSITY_COLUMNS
from .step_sparsity_records import FILE as STEP_SPARSITY_FILE
from .tensorfile import TensorFileError, read_header


def diff_pairs(files: Iterable[str], diff_inputs: Callable) -> dict[str, list[str]]:
    """Each diff table among `files`, with the (before, after) checkpoints the `diff` rule compares for it
    (`diff_inputs` is that rule's input function, called with the table's wildcards)."""
    pairs = {}
    for path in map(str, files):
        if match := DIFF_PATH.fullmatch(path):
            sides = diff_inputs(SimpleNamespace(**match.groupdict()))
            pairs[path] = [str(sides["before"]), str(sides["after"])]
    return pairs


def checked_inputs(rule, marker: str, diff_inputs: Callable) -> dict[str, list[str]]:
    """What rule `check_inputs` reads for a rule (a Snakemake `rules.<name>` proxy): the rule's inputs
    but its own marker, and both checkpoints of each of its diff tables."""
    files = [str(f) for f in rule.input if str(f) != marker]
    checkpoints = sorted({c for pair in diff_pairs(files, diff_inputs).values() for c in pair})
    return {"files": files, "checkpoints": checkpoints}


def read_checkpoint(path: str | os.PathLike):
    """An upstream checkpoint's tensor entries (headers only: cheap for any model size)."""
    check_exists(path)
    try:
        return Checkpoint(path)
    except (CheckpointError, OSError, json.JSONDecodeError) as err:
        raise stage_error(path, f"cannot be read as a checkpoint ({err})") from err


def _safetensors(path: str | os.PathLike) -> dict:
    check_exists(path)
    try:
        return read_header(path)[0]
    except (TensorFileError, OSError) as err:
        raise stage_error(path, f"cannot be read as safetensors ({err})") from err


def check_diff_table(table: pd.DataFrame, path: str | os.PathLike, before: str | os.PathLike,
                     after: str | os.PathLike) -> dict:
    """The diff table at `path` against the checkpoints it compares: exactly one row per tensor name that
    `diff.pair_tensors` yields for the pair (the union of both sides' names), each with the status and
    the compared entry count the checkpoints' headers give, and unchanged counts within 0..numel.

    Only headers are read, so this costs milliseconds for any model. Rows missing or extra would change
    the sparsity silently; a status or count that disagrees means the table came from other checkpoints.
    The resized policy is the table's own ("resized" rows mean shared_rows; names do not depend on it).
    """
    resized = "shared_rows" if (table["status"] == "resized").any() else "skip"
    pairs = {p.name: p for p in pair_tensors(read_checkpoint(before), read_checkpoint(after), resized)}
    counts = Counter(table["name"])
    problems = []
    if missing := sorted(set(pairs) - set(counts)):
        problems.append(f"no row for {_some(missing)}")
    if extra := sorted(set(counts) - set(pairs)):
        problems.append(f"rows for no tensor of the checkpoints: {_some(extra)}")
    if repeated := sorted(n for n, k in counts.items() if k > 1):
        problems.append(f"several rows for {_some(repeated)}")
    disagree = [f"{r['name']} (status {r['status']}, numel {r['numel']}; the checkpoints give "
                f"{pairs[r['name']].status}, {pairs[r['name']].numel})"
                for r in table[["name", "status", "numel"]].to_dict("records")
                if r["name"] in pairs and (r["status"] != pairs[r["name"]].status
                                           or r["numel"] != pairs[r["name"]].numel)]
    if disagree:
        problems.append(f"rows that disagree with the checkpoints' headers: {_some(disagree)}")
    for column in (c for c in table.columns if c.startswith(COLUMN_PREFIX)):
        bad = table.loc[~table[column].between(0, table["numel"]), "name"].tolist()
        if bad:
            problems.append(f"{column} outside 0..numel for {_some(bad)}")
    if problems:
        raise StageOutputError(
            f"{path} does not match the checkpoints it compares, {before} and {after} ({len(table)} rows for "
            f"their {len(pairs)} tensors; {'; '.join(problems)}): it is written by rule `diff` from those "
            "checkpoints; delete it and rerun snakemake")
    return {"rows": len(table), "tensors": len(pairs)}


def _some(items: Sequence[str], shown: int = 5) -> str:
    return ", ".join(items[:shown]) + (f", ... ({len(items) - shown} more)" if len(items) > shown else "")


def check_output(path: str | os.PathLike) -> dict:
    """Read one upstream output by its kind (Parquet, CSV, JSON, safetensors, checkpoint folder) and say
    what it holds; a bad one raises `StageOutputError`."""
    suffix = Path(path).suffix
    if DIFF_PATH.search(Path(path).as_posix()):
        return {"rows": len(read_diff(path))}
    if suffix == ".parquet":
        return {"rows": len(read_parquet(path))}
    if suffix == ".csv":
        return {"rows": len(read_csv(path))}
    if suffix == ".json":
        return {"keys": len(read_json(path))}
    if suffix == ".safetensors":
        return {"tensors": len(_safetensors(path))}
    if Path(path).is_dir():
        summary = {"tensors": len(read_checkpoint(path).entries)}
        if (Path(path) / "training.json").exists():  # what the training stages record beside a checkpoint
            record = read_json(Path(path) / "training.json")
            summary["training.json keys"] = len(record)
            if (record.get("run") or {}).get("step_sparsity"):  # the run recorded its steps: the file is there
                summary[STEP_SPARSITY_FILE] = len(read_parquet(Path(path) / STEP_SPARSITY_FILE, STEP_SPARSITY_COLUMNS))
        return summary
    check_exists(path)
    return {}


def check_stage_inputs(files: Iterable[str | os.PathLike],
                       diffs: dict[str, Sequence[str | os.PathLike]] | None = None) -> dict[str, dict]:
    """Check every upstream output a stage reads, and each diff table against its (before, after)
    checkpoints; one error lists every bad file, so a single fix-and-rerun round repairs them all."""
    summary: dict[str, dict] = {}
    errors: list[str] = []
    for path in dict.fromkeys(map(str, files)):
        try:
            if path in (diffs or {}):
                summary[path] = check_diff_table(read_diff(path), path, *diffs[path])
            else:
                summary[path] = check_output(path)
        except StageOutputError as err:
            errors.append(str(err))
    if errors:
        raise StageOutputError("\n".join(errors) if len(errors) == 1 else
                               f"{len(errors)} upstream outputs are bad:\n" + "\n".join(f"- {e}" for e in errors))
    return summary
