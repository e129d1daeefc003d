"""Hub ids and revisions from a config, checked before any of them reaches a path.

A hub model of a checkpoint pair becomes the file name of its download record
(`results/downloads/<slug>.json`, its log and benchmark), and huggingface_hub itself writes a
revision under its cache (`refs/<revision>`). A config string with `../` segments would then write,
and on failure Snakemake would delete, a file outside the work folder. So every hub id must be a
valid repository id (huggingface_hub's own rule), every revision a plain git ref name, and the slug
is built so that it is always one path component.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

# git check-ref-format, the parts that matter for paths: no `..`, no empty or dot-led component, no
# leading or trailing `/`, no backslash or control characters; `refs/pr/1` and commit hashes pass.
_REVISION = re.compile(r"^(?!/)(?!.*//)(?!.*\.\.)(?!.*/$)(?!.*(?:^|/)\.)[A-Za-z0-9._/+-]{1,255}$")


class HubRefError(ValueError):
    """A hub id or revision that cannot be used safely; the message names the key and the fix."""


def check_repo_id(repo_id: Any, key: str) -> None:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        if not isinstance(repo_id, str):
            raise HFValidationError(f"not a string: {repo_id!r}")
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise HubRefError(f"{key}: {repo_id!r} is not a hub repository id ({err}); write it as `org/name`, "
                          "or use `source: local` with a folder") from None


def check_revision(revision: Any, key: str) -> None:
    if revision is None:
        return
    if not isinstance(revision, str) or not _REVISION.match(revision):
        raise HubRefError(f"{key}: {revision!r} is not a branch, tag or commit name (letters, digits, `._+-/`, "
                          "no `..`, no leading, trailing or doubled `/`); fix the revision")


def hub_refs(config: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(config key, entry) of every hub reference: the model, named models, pair sides, hub datasets."""
    model = config.get("model") or {}
    if model.get("source") == "hub":
        yield "model", model
    for name, entry in (config.get("models") or {}).items():
        if entry.get("source") == "hub":
            yield f"models.{name}", entry
    for name, pair in (config.get("checkpoint_pairs") or {}).items():
        for side in ("before", "after"):
            if pair[side].get("source") == "hub":
                yield f"checkpoint_pairs.{name}.{side}", pair[side]


def check_hub_refs(config: dict[str, Any]) -> None:
    """Refuse a hub id or revision that could leave the work folder, naming its key."""
    for key, ref in hub_refs(config):
        check_repo_id(ref.get("name"), f"{key}.name")
        check_revision(ref.get("revision"), f"{key}.revision")
    for name, dataset in (config.get("datasets") or {}).items():
        if dataset.get("source") == "hub":  # `path` may be a local dataset folder: it is only read
            check_revision(dataset.get("revision"), f"datasets.{name}.revision")


def download_slug(ref: dict[str, Any]) -> str:
    """One-path-component id of a hub model at a revision: org--name, or org--name@revision with `/` and
    anything outside `[A-Za-z0-9._-]` percent-encoded (refs/pr/1 -> refs%2Fpr%2F1)."""
    check_repo_id(ref["name"], "hub id")
    slug = ref["name"].replace("/", "--")
    revision = ref.get("revision")
    if revision:
        check_revision(revision, f"revision of {ref['name']}")
        slug = f"{slug}@{quote(revision, safe='')}"
    if "/" in slug or slug in (".", ".."):  # unreachable after the checks above; kept as the last guard
        raise HubRefError(f"download id {slug!r} is not a single file name")
    return slug
