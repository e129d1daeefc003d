"""Glue for Snakemake script jobs: log capture and thread limits, in one place for every script."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

from .hub_refs import download_slug


@contextmanager
def snakemake_job(snakemake) -> Iterator[None]:
    """Send the job's Python output (and any traceback) to its log; torch uses the job's thread count.

    torch is configured only when the script already imported it: the diff stages run on NumPy and
    should not pay torch's import.
    """
    log = Path(snakemake.log[0])
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", buffering=1) as stream, redirect_stdout(stream), redirect_stderr(stream):
        try:
            if "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(max(1, int(snakemake.threads)))
            yield
        except BaseException:
            traceback.print_exc()
            raise


def configure_hub_environment(config: dict) -> None:
    """Keep Hugging Face caches with the results; go offline unless the config names a hub source.

    Called when the Snakefile is parsed, so local jobs and Slurm jobs (which re-parse it) inherit it.
    """
    os.environ.setdefault("HF_HOME", str(Path("results/.cache/huggingface").resolve()))
    models = [config.get("model", {}), *config.get("models", {}).values()]
    uses_hub = (any(m.get("source") == "hub" for m in models)
                or any(d["source"] == "hub" for d in config.get("datasets", {}).values())
                or bool(hub_downloads(config)))
    if not uses_hub:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_DATASETS_OFFLINE"] = "1"


def hub_downloads(config: dict) -> dict[str, dict]:
    """Every hub model the checkpoint pairs need, by slug (each downloaded once, however many pairs use it)."""
    refs = [pair[side] for pair in config.get("checkpoint_pairs", {}).values() for side in ("before", "after")]
    return {download_slug(ref): ref for ref in refs if ref["source"] == "hub"}
