"""Recover from a killed workflow: remove Snakemake's lock only when no Snakemake process can hold it.

After `kill -9` (or a lost terminal) the next `snakemake` stops with "Directory cannot be locked" until
someone runs `snakemake --unlock`. `make demo` calls this first. Unlocking the lock of a live run is
data loss (the second run then removes the first run's outputs as incomplete), so the check is
deliberately wide: a process counts as Snakemake when any word of its command line is `snakemake`
(the entry point, `python -m snakemake`, a path to it, a wrapper such as `uv run`, `conda run`,
`nohup`, `srun` or `bash -c "..."`), and as working here when its working directory is this folder,
its `--directory`/`-d` names it, or it holds a file under this folder's `.snakemake/` open. A process
that may be Snakemake but cannot be inspected makes the answer "unsure": the lock is kept and the
message says how to unlock by hand.

Incomplete jobs are then rerun (`rerun-incomplete` in the profiles); outputs are written atomically, so
a killed job has left no output that looks complete.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from enum import Enum
from pathlib import Path

_SNAKEMAKE_WORD = re.compile(r"(?<![A-Za-z0-9_])snakemake(?![A-Za-z0-9_])")
_DIRECTORY_FLAGS = ("--directory", "-d")


class Holder(Enum):
    NONE = "none"
    RUNNING = "running"
    UNSURE = "unsure"


def is_snakemake_command(cmdline: Sequence[str]) -> bool:
    """Whether a command line runs Snakemake, directly or through an interpreter or a wrapper."""
    return any(_SNAKEMAKE_WORD.search(part) for part in cmdline)


def _named_directories(cmdline: Sequence[str], cwd: Path | None) -> list[Path]:
    """Folders given with --directory/-d (relative ones resolved from the process's cwd, when known)."""
    named = []
    for i, part in enumerate(cmdline):
        value = None
        if part in _DIRECTORY_FLAGS and i + 1 < len(cmdline):
            value = cmdline[i + 1]
        elif part.startswith("--directory="):
            value = part.split("=", 1)[1]
        if value:
            path = Path(value)
            if path.is_absolute() or cwd is not None:
                named.append(path if path.is_absolute() else cwd / path)
    return named


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _holds_open_file_under(proc, folder: Path) -> bool | None:
    """Whether the process has a file under `folder` open; None when that cannot be read."""
    open_files = getattr(proc, "open_files", None)
    if open_files is None:
        return False
    try:
        return any(Path(f.path).is_relative_to(folder) for f in open_files())
    except Exception:  # psutil.AccessDenied, NoSuchProcess, ...: not readable
        return None


def lock_holder(workdir: Path, processes: Iterable | None = None) -> tuple[Holder, list[str]]:
    """Whether a Snakemake process (other than this one) may be working in `workdir`, with the processes
    that make it so (pid and command line)."""
    import psutil

    workdir = workdir.resolve()
    state_dir = workdir / ".snakemake"
    running, unsure = [], []
    source = processes if processes is not None else psutil.process_iter(["pid", "cmdline", "cwd"], ad_value=None)
    for proc in source:
        info = proc.info if hasattr(proc, "info") else proc
        pid, cmdline, cwd = info.get("pid"), info.get("cmdline"), info.get("cwd")
        if pid == os.getpid():
            continue
        if cmdline is None:  # unreadable (another user's process, a zombie): cannot be ruled out
            if cwd is not None and _same(Path(cwd), workdir):
                unsure.append(f"pid {pid} (command line not readable)")
            continue
        if not is_snakemake_command(cmdline):
            continue
        where = Path(cwd) if cwd else None
        described = f"pid {pid}: {' '.join(cmdline)[:200]}"
        if (where is not None and _same(where, workdir)) or any(_same(d, workdir) for d in _named_directories(cmdline, where)):
            running.append(described)
            continue
        holds = _holds_open_file_under(proc, state_dir) if hasattr(proc, "info") else False
        if holds:
            running.append(described)
        elif where is None or holds is None:
            unsure.append(f"{described} (its working directory is not readable)")
    if running:
        return Holder.RUNNING, running
    return (Holder.UNSURE, unsure) if unsure else (Holder.NONE, [])


def snakemake_running_in(workdir: Path, processes: Iterable | None = None) -> bool:
    """Whether a Snakemake process may hold `workdir`'s lock (running, or not ruled out)."""
    return lock_holder(workdir, processes)[0] is not Holder.NONE


def unlock_if_stale(workdir: Path = Path("."), snakemake_args: Sequence[str] = (),
                    processes: Iterable | None = None) -> bool:
    """Run `snakemake --unlock [snakemake_args]` when a lock is left and nothing can hold it; returns
    whether it did. `snakemake_args` name the workflow when it is not the one in `workdir` (--snakefile, ...)."""
    locks = workdir / ".snakemake" / "locks"
    if not locks.is_dir() or not any(locks.iterdir()):
        return False
    holder, who = lock_holder(workdir, processes)
    if holder is Holder.RUNNING:
        print(f"{workdir.resolve()} is locked by a running Snakemake ({'; '.join(who)}): left locked",
              file=sys.stderr)
        return False
    if holder is Holder.UNSURE:
        print(f"{workdir.resolve()} is locked, and these processes may be a Snakemake working there: "
              f"{'; '.join(who)}. The lock is kept. If no Snakemake runs in this folder, unlock it with "
              "`snakemake --unlock` (the same --snakefile/--directory/--configfile as the run)", file=sys.stderr)
        return False
    print("a previous run was interrupted: removing its stale lock (snakemake --unlock)", file=sys.stderr)
    snakemake = Path(sys.executable).parent / "snakemake"
    done = subprocess.run([str(snakemake), "--unlock", "--cores", "1", *snakemake_args], cwd=workdir,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"snakemake --unlock failed in {workdir}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return True


if __name__ == "__main__":
    unlock_if_stale()
