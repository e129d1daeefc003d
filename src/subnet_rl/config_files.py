"""Config files read strictly: a key given twice is an error, not a silent override.

YAML loaders (Snakemake's too) keep the last of two equal keys in a mapping, so a run pasted twice
under `runs:` with different settings silently becomes one run. The workflow re-reads each config file
it was given with a loader that refuses duplicates, naming the file, the key and both lines.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import yaml


class DuplicateKeyError(ValueError):
    """A mapping in a config file names the same key twice."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (merge keys `<<` aside)."""

    source = "<config>"

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False):
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
                seen[key] = line
            except TypeError:  # an unhashable key: SafeLoader's own error names it
                break
            if first is not None:
                raise DuplicateKeyError(f"{self.source}: line {line}: key {key!r} is given twice in one mapping "
                                        f"(first at line {first}); the second would silently replace the first: "
                                        "remove or rename one")
        return super().construct_mapping(node, deep=deep)


def _refuse_json_duplicates(pairs: list[tuple[str, object]], source: str) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(f"{source}: key {key!r} is given twice in one object; the second would "
                                    "silently replace the first: remove or rename one")
        out[key] = value
    return out


def check_no_duplicate_keys(path: str | os.PathLike) -> None:
    """Raise DuplicateKeyError when any mapping of the file (YAML or JSON) repeats a key."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        json.loads(text, object_pairs_hook=lambda pairs: _refuse_json_duplicates(pairs, str(path)))
        return
    except DuplicateKeyError:
        raise
    except ValueError:
        pass  # not JSON: read it as YAML
    loader = _StrictLoader(text)
    loader.source = str(path)
    try:
        loader.get_single_data()
    except yaml.YAMLError:
        pass  # not valid YAML at all: Snakemake's own loader reports it
    finally:
        loader.dispose()


def check_config_files(paths: Iterable[str | os.PathLike]) -> None:
    for path in paths:
        if Path(path).is_file():
            check_no_duplicate_keys(path)
