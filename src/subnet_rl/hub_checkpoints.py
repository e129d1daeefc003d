"""Checkpoints from the hub or a local folder, fetched as plain folders, and the one clear error when the hub
cannot provide one. No torch: the download and fetch jobs only copy files, so they should not pay its import."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from .atomic import atomic_path

HUB_PATTERNS = ["*.safetensors", "*.json", "*.model", "*.txt", "*.tiktoken"]
WEIGHT_PATTERNS = ["*.safetensors", "*.json"]


def require_checkpoint(path: str | os.PathLike) -> Path:
    """Fail early, naming the folder and the fix, when a checkpoint folder is missing or incomplete."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint folder {path} does not exist; run the stage that creates it first")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} has no config.json: it is not a transformers checkpoint folder")
    if not any(path.glob("*.safetensors")):
        raise FileNotFoundError(f"{path} has no *.safetensors weights; re-save the checkpoint in safetensors format")
    return path


def fetch_pretrained(source: str, name: str, out_dir: str | os.PathLike, revision: str | None = None,
                     cache_dir: str | None = None, config_key: str | None = None) -> dict:
    """Materialise a pretrained checkpoint (a local folder or a hub id) as a plain folder.

    Provenance (source, name, resolved revision) is returned and saved as provenance.json in the folder.
    `config_key` (e.g. `models.big.name`) names the setting in the error when a hub id is unavailable.
    """
    if source == "local":
        src = require_checkpoint(name)
        resolved = revision
    elif source == "hub":
        snapshot = download_snapshot(name, revision, cache_dir, HUB_PATTERNS,
                                     config_key=config_key or "model.name (or models.<name>.name)")
        src, resolved = require_checkpoint(snapshot["path"]), snapshot["revision"]
    else:
        raise ValueError(f"unknown model source {source!r}; use 'embedded', 'local' or 'hub'")
    provenance = {"source": source, "name": name, "revision": resolved}
    with atomic_path(out_dir, directory=True) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        (tmp / "provenance.json").write_text(json.dumps(provenance, indent=2))
    return provenance


def download_snapshot(repo_id: str, revision: str | None = None, cache_dir: str | None = None,
                      allow_patterns: list[str] | None = None, config_key: str | None = None) -> dict:
    """Download (or find in the cache) a hub repository's files; returns where and which commit.

    Files stay in the hub cache (a 70B checkpoint is not copied); the resolved commit hash is returned
    so results can name exactly what was compared, whatever `revision` (branch, tag, None) said.
    A hub id that is not found, or not cached while offline, raises `HubUnavailable` naming the fix.
    """
    from huggingface_hub import snapshot_download

    try:
        path = Path(snapshot_download(repo_id=repo_id, revision=revision, cache_dir=cache_dir,
                                      allow_patterns=allow_patterns or WEIGHT_PATTERNS))
    except Exception as err:
        missing = hub_unavailable(err, "hub model", repo_id,
                                  config_key or "checkpoint_pairs.<pair>.before/after.name", revision, cache_dir)
        if missing is None:
            raise
        raise missing from err
    return {"repo_id": repo_id, "requested_revision": revision, "revision": path.name, "path": str(path),
            "files": sorted(p.name for p in path.iterdir())}


def seed_hub_cache(folder: str | os.PathLike, repo_id: str, cache_dir: str | os.PathLike, commit: str) -> Path:
    """Put a local checkpoint folder into a hub cache (`<cache_dir>/models--org--name/snapshots/<commit>`,
    `refs/main` -> commit), so a config naming `repo_id` with `source: hub` runs offline against it.

    For machines without hub access: a model fetched elsewhere (or a stand-in, as the tests and the real-model
    bench use) is found by the workflow's own download code, with HF_HUB_OFFLINE=1 and the same cache
    (`$HF_HOME/hub`). The commit recorded in provenance.json is `commit`: name it so it says what the files are.
    """
    if len(commit) != 40 or any(c not in "0123456789abcdef" for c in commit):
        raise ValueError(f"commit {commit!r}: a hub commit is 40 lowercase hex digits")
    repo = Path(cache_dir) / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    if snapshot.exists():
        raise FileExistsError(f"{snapshot} exists; remove it first or use another commit")
    with atomic_path(snapshot, directory=True) as tmp:
        shutil.copytree(require_checkpoint(folder), tmp, dirs_exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


class HubUnavailable(FileNotFoundError):
    """A hub id this process cannot get (not found, gated, unreachable, or offline and not cached)."""


def _hub_missing_types() -> tuple[type[BaseException], ...]:
    """huggingface_hub's and datasets' "not found / offline / not cached" errors."""
    from huggingface_hub.errors import (LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    types: list[type[BaseException]] = [LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError,
                                        OfflineModeIsEnabled, ConnectionError, FileNotFoundError]
    try:  # datasets: DatasetNotFoundError, DataFilesNotFoundError (FileNotFoundError subclasses), ConnectionError
        from datasets.exceptions import DataFilesNotFoundError, DatasetNotFoundError

        types += [DatasetNotFoundError, DataFilesNotFoundError]
    except ImportError:
        pass
    try:
        import httpx

        types += [httpx.ConnectError, httpx.TimeoutException]
    except ImportError:
        pass
    return tuple(types)


def hub_offline() -> bool:
    """Whether this process is in Hugging Face offline mode (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)."""
    import huggingface_hub.constants

    offline = bool(huggingface_hub.constants.HF_HUB_OFFLINE)
    datasets_config = sys.modules.get("datasets.config")
    return offline or bool(getattr(datasets_config, "HF_HUB_OFFLINE", False))


def hub_unavailable(err: BaseException, what: str, repo_id: str, config_key: str, revision: str | None = None,
                    cache_dir: str | None = None, dataset: bool = False,
                    dataset_config: str | None = None) -> HubUnavailable | None:
    """The one clear error for a hub id that cannot be had (None when `err` is some other failure).

    It names the id, the config key, whether the process is offline, the cache looked in, and the fix.
    """
    if not isinstance(err, _hub_missing_types()) or isinstance(err, HubUnavailable):
        return None
    home = os.environ.get("HF_HOME", "~/.cache/huggingface")
    cache = f"{cache_dir} (the `cache_dir` setting)" if cache_dir else f"the cache under HF_HOME={home}"
    at = f" at revision {revision!r}" if revision else ""
    get = (f"`datasets.load_dataset({repo_id!r}{f', {dataset_config!r}' if dataset_config else ''})`" if dataset else
           f"`hf download {repo_id}{f' --revision {revision}' if revision else ''}"
           f"{f' --cache-dir {cache_dir}' if cache_dir else ''}`")
    if hub_offline():
        state = (f"this process is offline (HF_HUB_OFFLINE=1, from the environment or set by the workflow when no "
                 f"config entry uses the hub) and {repo_id!r} is not in {cache}")
        fix = (f"pre-download it into that cache on a machine with network ({get} with the same HF_HOME"
               f"{' and cache_dir' if dataset and cache_dir else ''}), or check the id"
               f"{' (or the local dataset folder)' if dataset else ''}")
    else:
        state = (f"this process is online and did not get it from the hub (the id or revision does not exist, "
                 f"the repository is gated or private, or the hub is unreachable), and it is not in {cache}")
        fix = ("check the id and revision (and HF_TOKEN for a gated repository), or pre-download it into that "
               f"cache ({get}) and set HF_HUB_OFFLINE=1")
    return HubUnavailable(f"{config_key}: {what} {repo_id!r}{at} is not available: {state}. Fix: {fix}. "
                          f"[{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}]")
