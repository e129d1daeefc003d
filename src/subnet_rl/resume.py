"""Resumable training jobs: the Trainer's checkpoints (weights, optimizer, scheduler, RNG) kept beside the
job's output, so a job killed at its time limit or preempted continues where it was, not at step 0.

The folder belongs to one job's inputs and settings: it records a fingerprint of both, and a folder
whose fingerprint differs (another learning rate, a re-made start checkpoint) is discarded rather than
resumed. Only complete checkpoints count (a kill while saving leaves one without `trainer_state.json`,
which the Trainer writes last). Once the final checkpoint is in place the folder is removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

FINGERPRINT = "job.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def fingerprint(settings: dict[str, Any], inputs: list[str | os.PathLike | None]) -> str:
    """Hash of the run's settings and of its input files (path, size, modification time of each file)."""
    files = []
    for item in inputs:
        if item is None:
            continue
        path = Path(item)
        members = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        files += [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in members if p.exists()]
    text = json.dumps({"settings": settings, "inputs": files}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def complete_checkpoints(folder: Path) -> list[Path]:
    """The Trainer's checkpoints in `folder` that were written to the end, oldest first."""
    found = []
    for child in folder.iterdir() if folder.is_dir() else []:
        match = _CHECKPOINT.match(child.name)
        if match and child.is_dir() and (child / "trainer_state.json").is_file():
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def prepare(folder: Path, job_fingerprint: str, log=print) -> str | None:
    """Make `folder` this job's resume folder; returns the checkpoint to resume from, or None."""
    record = folder / FINGERPRINT
    if folder.is_dir():
        recorded = json.loads(record.read_text()).get("fingerprint") if record.is_file() else None
        if recorded != job_fingerprint:
            log(f"resume: {folder} holds checkpoints of other settings or inputs; starting from step 0")
            shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"fingerprint": job_fingerprint}))
    checkpoints = complete_checkpoints(folder)
    if checkpoints:
        log(f"resume: continuing from {checkpoints[-1].name} in {folder}")
        return str(checkpoints[-1])
    return None


def finish(folder: Path) -> None:
    """The final checkpoint is in place: the resume folder has served."""
    shutil.rmtree(folder, ignore_errors=True)
