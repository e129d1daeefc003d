"""The documentation stays true: every config key the schema has is in docs/configuration.md (and no other),
every command README.md and docs/ show is run or dry-run, every link resolves, and the README's stage map
names every rule of the workflow.

Commands are lines of ```bash/```sh blocks, `$ ` lines of ```console blocks (the lines after one are its
expected output) and `$ ` lines anywhere else. Each is checked by what it is (`make X` as `make -n X`,
`snakemake ...` as a dry run in a scratch folder, cheap `subnet-rl` calls as shown); one the test cannot
check fails it. The snakemake dry runs take ~10 s each and are marked `e2e`.
"""

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from test_workflow import local_env

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
CONFIG_DOC = REPO / "docs" / "configuration.md"
#: how an entry of a map (runs, datasets, models, checkpoint_pairs, ...) is written in a key path
ENTRY = "<name>"
SHELL_FENCES = {"bash", "sh", "shell", "console"}
#: `subnet-rl` calls cheap enough to run as shown (no checkpoints, no torch)
CHEAP_SUBNET_RL = {"--help", "--version", "plan"}


# --- the schema's keys against docs/configuration.md ---------------------------------------------------

def _deref(ref: str, root: dict) -> dict:
    target = root
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return target


def _resolve(node: Any, root: dict) -> Any:
    """A leaf's schema with its `$ref` target's keys under its own (for its `default`)."""
    while isinstance(node, dict) and "$ref" in node:
        node = {**_deref(node["$ref"], root), **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _branches(node: dict, root: dict) -> list[dict]:
    """The node and every subschema that applies with it and can add keys: its `$ref` (beside its own
    keys, as in JSON Schema 2020-12), allOf/anyOf/oneOf options and their if/then/else."""
    found = [node]
    if "$ref" in node:
        found += _branches(_deref(node["$ref"], root), root)
    for option in [o for c in ("allOf", "anyOf", "oneOf") for o in node.get(c, [])]:
        found += _branches(option, root)
        found += [b for k in ("then", "else") if isinstance(option.get(k), dict) for b in _branches(option[k], root)]
    return found


def schema_keys(node: dict, root: dict, prefix: str = "") -> dict[str, dict]:
    """Every key path the schema accepts (`training.lr`, `runs.<name>.lr`) -> its schema node; names a
    `propertyNames: {not: {enum: [...]}}` forbids are left out."""
    branches = _branches(node, root)
    forbidden = {n for b in branches for n in b.get("propertyNames", {}).get("not", {}).get("enum", [])}
    children: dict[str, list[dict]] = {}
    for branch in branches:
        for name, child in branch.get("properties", {}).items():
            children.setdefault(name, []).append(child)
        for entry in [branch.get("additionalProperties"), *branch.get("patternProperties", {}).values()]:
            if isinstance(entry, dict) and any("properties" in b for b in _branches(entry, root)):
                children.setdefault(ENTRY, []).append(entry)
    keys: dict[str, dict] = {}
    for name, nodes in children.items():
        if name in forbidden:
            continue
        path = f"{prefix}.{name}" if prefix else name
        resolved = [_resolve(n, root) for n in nodes]
        keys[path] = next((n for n in resolved if "default" in n), resolved[0])
        for child in nodes:
            keys.update({k: v for k, v in schema_keys(child, root, path).items() if k not in keys or "default" in v})
    return keys


def _backticked(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def _cells(line: str) -> list[str]:
    """A Markdown table row's cells (an escaped `\\|` stays in its cell)."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def documented_keys(markdown: str) -> dict[str, str]:
    """Key path -> its default cell, from the key tables (first header cell `key`) of the configuration
    reference. Each row's key is relative to every backticked key of the heading above its table; the
    parents of a documented key are documented with it."""
    keys: dict[str, str] = {}
    prefixes: list[str] = []
    header: list[str] | None = None
    for line in markdown.splitlines():
        if line.startswith("#"):
            prefixes, header = _backticked(line), None
        elif not line.startswith("|"):
            header = None
        elif header is None:
            header = [cell.lower() for cell in _cells(line)]
        elif header[0] == "key" and not set(line) <= set("|-: "):
            cells = dict(zip(header, _cells(line)))
            keys.update(dict.fromkeys(prefixes, ""))
            for key in _backticked(cells["key"]):
                for path in [f"{p}.{key}" for p in prefixes] or [key]:
                    keys[path] = cells.get("default", "")
    for path in list(keys):
        parts = path.split(".")
        for end in range(1, len(parts)):
            keys.setdefault(".".join(parts[:end]), "")
    return keys


def _number(value: Any) -> Any:
    """A value as the workflow reads it: `1e-5` (a string to YAML) is a number (coerce_scientific_notation)."""
    return float(value) if isinstance(value, str) and re.fullmatch(r"[-+]?[\d.]+(e[-+]?\d+)?", value, re.I) else value


def _as_value(text: str) -> Any:
    value = yaml.safe_load(text)
    return [_number(v) for v in value] if isinstance(value, list) else _number(value)


def key_mismatches(schema: dict, markdown: str) -> tuple[set[str], set[str], dict[str, str]]:
    """(keys without docs, documented keys the schema lacks, keys whose documented default is not the
    schema's `default`)."""
    in_schema = schema_keys(schema, schema)
    documented = documented_keys(markdown)
    wrong_defaults = {}
    for path, cell in documented.items():
        node = in_schema.get(path)
        if node is not None and "default" in node and not isinstance(node["default"], dict):
            if node["default"] not in [_as_value(v) for v in _backticked(cell)]:
                wrong_defaults[path] = f"schema default {node['default']!r}, documented {cell!r}"
    return set(in_schema) - set(documented), set(documented) - set(in_schema), wrong_defaults


@pytest.fixture(scope="module")
def schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def test_every_schema_key_is_documented_with_its_default(schema):
    missing, unknown, wrong_defaults = key_mismatches(schema, CONFIG_DOC.read_text())
    assert not missing, f"schema keys without an entry in docs/configuration.md: {sorted(missing)}"
    assert not unknown, f"documented in docs/configuration.md but not in the schema: {sorted(unknown)}"
    assert not wrong_defaults, wrong_defaults


TOY_SCHEMA = {
    "$defs": {"knobs": {"properties": {"lr": {}, "batch_size": {"default": 8}}}},
    "properties": {
        "training": {"$ref": "#/$defs/knobs", "propertyNames": {"not": {"enum": ["lr"]}}},
        "runs": {"additionalProperties": {"allOf": [{"$ref": "#/$defs/knobs"}], "properties": {"algorithm": {}}}},
        "data": {"additionalProperties": {"allOf": [{"if": {}, "then": {"properties": {"digits": {}}}}]}},
    },
}
TOY_DOC = """## `training` and `runs.<name>`
| key | meaning | default |
|---|---|---|
| `batch_size` | examples per step | `8` |

## `runs.<name>`
| key | meaning | default |
|---|---|---|
| `lr`, `algorithm` | the run's own | required |

## Data: `data.<name>`
| key | meaning | default |
|---|---|---|
| `digits` | operand digits | required |
"""


def test_the_key_check_sees_an_added_a_removed_key_and_a_changed_default():
    """On a toy schema with what the real one uses ($ref, map entries, if/then, forbidden names)."""
    import copy
    assert key_mismatches(TOY_SCHEMA, TOY_DOC) == (set(), set(), {})
    schema = copy.deepcopy(TOY_SCHEMA)
    schema["$defs"]["knobs"]["properties"]["new_knob"] = {}
    schema["$defs"]["knobs"]["properties"]["batch_size"]["default"] = 7
    del schema["properties"]["data"]
    missing, unknown, wrong_defaults = key_mismatches(schema, TOY_DOC)
    assert missing == {"training.new_knob", "runs.<name>.new_knob"}
    assert unknown == {"data", "data.<name>", "data.<name>.digits"}
    assert set(wrong_defaults) == {"training.batch_size", "runs.<name>.batch_size"}
    assert key_mismatches(TOY_SCHEMA, TOY_DOC.replace("`training` and ", ""))[0] == {"training", "training.batch_size"}


# --- commands shown in the docs ------------------------------------------------------------------------

@dataclass(frozen=True)
class Shown:
    """A command as the docs show it, where, and the output they show after it (console blocks)."""
    doc: str
    line: int
    command: str
    output: tuple[str, ...] = ()


def shown_commands(path: Path) -> list[Shown]:
    shown: list[Shown] = []
    fence, pending, output = None, "", None

    def add(lineno: int, text: str, out: list[str] | None = None) -> None:
        words = shlex.split(text, comments=True)
        if words:
            shown.append(Shown(path.name, lineno, shlex.join(words), tuple(out or ())))

    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        opened = re.match(r"^```(\w*)", line)
        if opened:
            if fence is not None and output is not None:
                add(*output)
            fence, output = (None if fence is not None else opened.group(1)), None
            continue
        if fence in SHELL_FENCES - {"console"}:
            pending += line.rstrip("\\") + " "
            if not line.endswith("\\"):
                add(lineno, pending)
                pending = ""
        elif line.startswith("$ "):
            if output is not None:
                add(*output)
            output = (lineno, line[2:], [])
            if fence != "console":
                add(*output)
                output = None
        elif output is not None:
            output[2].append(line)
    return shown


ALL_SHOWN = [shown for doc in DOCS for shown in shown_commands(doc)]


def _program(command: str) -> tuple[str, list[str]]:
    words = shlex.split(command)
    return Path(words[0]).name, words[1:]


def check_kind(command: str) -> str | None:
    """How a shown command is checked, or None when the test cannot check it."""
    program, args = _program(command)
    if program == "make":
        return "make -n"
    if program == "snakemake":
        return "snakemake -n"
    if program == "subnet-rl" and args and (args[0] in CHEAP_SUBNET_RL or args[1:] == ["--help"]):
        return "run"
    return None


def test_every_shown_command_has_a_check():
    assert ALL_SHOWN, "no commands found in README.md and docs/"
    unchecked = [f"{s.doc}:{s.line}: {s.command}" for s in ALL_SHOWN if check_kind(s.command) is None]
    assert not unchecked, "commands the docs show that tests/test_docs.py cannot check:\n" + "\n".join(unchecked)
    assert check_kind("curl https://example.org") is None and check_kind(".venv/bin/subnet-rl diff a b") is None


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A folder to dry-run snakemake in as from the repository root: its configs and profiles, nothing else,
    so nothing is written in the checkout."""
    root = tmp_path_factory.mktemp("docs-dry-run")
    for folder in ("config", "profiles"):
        shutil.copytree(REPO / folder, root / folder)
    (root / "slurm").symlink_to("profiles/slurm")
    # vLLM (config/train-paper.yaml's rollout and evaluation engine) is installed on the cluster, not here;
    # the config check asks only that it imports, so a stand-in package lets the DAG be built.
    (root / "stub" / "vllm").mkdir(parents=True)
    (root / "stub" / "vllm" / "__init__.py").write_text("")
    return root


def _run(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300, env={**local_env(), **env})


@pytest.mark.parametrize("shown", [
    pytest.param(s, id=f"{s.doc}:{s.line}", marks=[pytest.mark.e2e] if check_kind(s.command) == "snakemake -n" else [])
    for s in ALL_SHOWN if check_kind(s.command)])
def test_shown_command_runs_or_dry_runs(shown: Shown, scratch: Path):
    program, args = _program(shown.command)
    kind = check_kind(shown.command)
    if kind == "make -n":
        result = _run(["make", "-n", *args], REPO)
    elif kind == "snakemake -n":
        result = _run([str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), *args, "-n"], scratch,
                      PYTHONPATH=str(scratch / "stub"))
    else:
        result = _run([str(BIN / "subnet-rl"), *args], REPO)
    assert result.returncode == 0, f"{shown.doc}:{shown.line}: {shown.command}\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
    if shown.output:
        assert result.stdout.rstrip("\n").splitlines() == list(shown.output), f"{shown.doc}:{shown.line}: output differs"


def test_usage_synopses_name_only_real_options():
    """```text lines starting with `subnet-rl <command>` (and their indented continuation lines) are
    synopses: each option they name is one the command's --help lists."""
    synopses: dict[str, set[str]] = {}
    for doc in DOCS:
        fence, current = None, None
        for line in doc.read_text().splitlines():
            if line.startswith("```"):
                fence, current = (None if fence is not None else line[3:].strip()), None
            elif fence == "text":
                start = re.match(r"^(?:\.venv/bin/)?subnet-rl (\w+)", line)
                current = start.group(1) if start else (current if line.startswith(" ") else None)
                if current:
                    synopses.setdefault(current, set()).update(re.findall(r"--[a-z][a-z-]*", line))
    assert synopses, "docs show no subnet-rl synopsis"
    for command, options in synopses.items():
        helped = _run([str(BIN / "subnet-rl"), command, "--help"], REPO)
        assert helped.returncode == 0, helped.stderr
        assert options <= set(re.findall(r"--[a-z][a-z-]*", helped.stdout)), (command, options)


# --- links and the stage map ---------------------------------------------------------------------------

def test_relative_links_and_named_repository_paths_resolve():
    """Links resolve from their page; a backticked path into the repository (`src/subnet_rl/...`) exists."""
    broken = []
    for doc in DOCS:
        text = doc.read_text()
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if not re.match(r"^[a-z]+:", target) and not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(REPO)}: {target}")
        for path in re.findall(r"`((?:src|workflow|config|bench|profiles|envs|tests|docs)/[\w./-]*)`", text):
            if not (REPO / path).exists():
                broken.append(f"{doc.relative_to(REPO)}: `{path}`")
    assert not broken, broken


def workflow_rules() -> set[str]:
    """Rule names of workflow/rules/*.smk; a rule named in a loop (`name: f"figure_{...}"`) as `figure_<name>`."""
    names: set[str] = set()
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        names |= set(re.findall(r"^\s*rule (\w+):", text, re.M)) | set(re.findall(r"^use rule \w+ as (\w+)", text, re.M))
        names |= {f"{p}_{ENTRY}" for p in re.findall(r'^\s*rule:\s*\n\s*name:\s*\n\s*f"(\w+)_\{', text, re.M)}
    return names


def test_readme_stage_map_names_every_rule():
    lines = (REPO / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if _cells(line)[:2] == ["stage", "rule(s)"])
    named: set[str] = set()
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        named |= set(_backticked(re.sub(r"\(.*?\)", "", _cells(line)[1])))  # a remark in parentheses names no rule
    assert named == workflow_rules(), f"stage map vs rules: {sorted(named ^ workflow_rules())}"
