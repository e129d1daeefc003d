"""Recover from a killed workflow: remove Snakemake's lock when no Snakemake process holds it.

After `kill -9` (or a lost terminal) the next `snakemake` stops with "Directory cannot be locked" until
someone runs `snakemake --unlock`. `make demo` calls this first: it unlocks only when a lock exists and
no Snakemake process runs in this directory, so a workflow that is really running is never disturbed.
Incomplete jobs are then rerun (`rerun-incomplete` in the profiles); outputs are written atomically, so
a killed job has left no output that looks complete.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path


def snakemake_running_in(workdir: Path, processes: Iterable | None = None) -> bool:
    """Whether a Snakemake process (other than this one) has `workdir` as its working directory."""
    import psutil

    workdir = workdir.resolve()
    for proc in processes if processes is not None else psutil.process_iter(["pid", "cmdline", "cwd"]):
        info = proc.info if hasattr(proc, "info") else proc
        if info.get("pid") == os.getpid() or not info.get("cmdline") or not info.get("cwd"):
            continue
        if any(Path(part).name == "snakemake" for part in info["cmdline"][:2]) and Path(info["cwd"]).resolve() == workdir:
            return True
    return False


def unlock_if_stale(workdir: Path = Path("."), snakemake_args: Sequence[str] = (),
                    processes: Iterable | None = None) -> bool:
    """Run `snakemake --unlock [snakemake_args]` when a lock is left and nothing holds it; returns whether
    it did. `snakemake_args` name the workflow when it is not the one in `workdir` (--snakefile, ...)."""
    locks = workdir / ".snakemake" / "locks"
    if not locks.is_dir() or not any(locks.iterdir()) or snakemake_running_in(workdir, processes):
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
