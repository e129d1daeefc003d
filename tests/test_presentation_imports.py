"""What the workflow pays for on every DAG parse, and what the figure rules' code hash covers.

The Snakefile's rules import library modules on every parse (a dry run, every job's own parse): those
must not load matplotlib or the training stack. A figure rule reruns when its code hash changes: that
hash must cover the figure's drawer, and never the findings, whose wording is no part of a figure.
"""

import re
import subprocess
import sys
from pathlib import Path

from subnet_rl.code_version import code_files
from subnet_rl.figures import FIGURES

ROOT = Path(__file__).resolve().parents[1]
RULES = sorted((ROOT / "workflow" / "rules").glob("*.smk"))
FIGURE_SCRIPT = ROOT / "workflow" / "scripts" / "figure.py"
HEAVY = ("matplotlib", "torch", "transformers", "trl")
#: An import statement of the library in a rule file, parenthesised over several lines or not.
LIBRARY_IMPORT = re.compile(r"^[ \t]*(?:from subnet_rl[\w.]* import (?:\([^)]*\)|[^\n]*)|import subnet_rl[\w.]*)",
                            re.MULTILINE)


def parse_imports() -> list[str]:
    """The library import statements of workflow/rules/*.smk, as written."""
    return [match.group(0).strip() for rule in RULES for match in LIBRARY_IMPORT.finditer(rule.read_text())]


def test_the_rules_import_the_figure_registry():
    assert "from subnet_rl.figures import FIGURES" in parse_imports()


def test_the_dag_parse_imports_neither_matplotlib_nor_the_training_stack():
    statements = parse_imports()
    assert len(statements) >= 5  # the parse found the rules' imports
    probe = "\n".join([*statements, "import sys",
                       f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"])
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [], f"the DAG parse imports {done.stdout.strip()}"


def _figure_code(spec) -> list[Path]:
    """What a figure rule's code param hashes: figure.py (with what it imports) and the figure's drawer."""
    return sorted({*code_files(FIGURE_SCRIPT), *code_files(spec.module_file)})


def test_each_figure_rule_hashes_its_own_drawer_and_no_other():
    drawers = {spec.module_file for spec in FIGURES.values()}
    assert len(drawers) == len(FIGURES)  # a drawer module per figure
    assert not drawers & set(code_files(FIGURE_SCRIPT))  # figure.py names no drawer: the rule adds its own
    for spec in FIGURES.values():
        assert set(_figure_code(spec)) & drawers == {spec.module_file}, spec.name


def test_rewording_the_findings_reruns_no_figure():
    for spec in FIGURES.values():
        hashed = [p.relative_to(ROOT).as_posix() for p in _figure_code(spec)]
        assert not [p for p in hashed if "findings" in p], f"figure {spec.name} hashes {hashed}"


def test_drawing_every_figure_loads_no_findings_and_no_training_stack():
    probe = "\n".join(["import sys", "from subnet_rl.figures import FIGURES",
                       "[spec.drawer_function() for spec in FIGURES.values()]",
                       f"print(' '.join(m for m in ('subnet_rl.findings', *{HEAVY[1:]!r}) if m in sys.modules))"])
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [], f"the drawers import {done.stdout.strip()}"
