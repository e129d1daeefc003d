"""Jobs that neither train nor generate import neither torch nor TRL: their imports are what every such job
pays before its first line of work (issue 16: ~40 jobs each paid 5-7 s of TRL/transformers imports).

Each workflow script runs as its own job, which starts by executing the script's import statements. Here
a fresh interpreter executes exactly those statements (wherever they are in the script, so an import
inside `with snakemake_job(...)` counts too) and reports which heavy packages ended up in `sys.modules`,
whether the script imports them itself or a `subnet_rl` module does, directly or not.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "workflow" / "scripts"
TORCH_STACK = ("torch", "transformers", "trl", "datasets")  # seconds of import each job would pay
WATCHED = (*TORCH_STACK, "matplotlib", "math_verify")
TRAINS_OR_GENERATES = (*TORCH_STACK, "math_verify")

# What each script may import, and why; a script not named here may import none of WATCHED.
ALLOWED: dict[str, tuple[str, ...]] = {
    "build_model": TRAINS_OR_GENERATES,  # builds and saves a torch model
    "train": TRAINS_OR_GENERATES,  # trains in this process (single-process launch)
    "warmup": TRAINS_OR_GENERATES,  # as train
    "evaluate": TRAINS_OR_GENERATES,  # generates and scores completions
    "preference_pairs": TRAINS_OR_GENERATES,  # generates pairs, scores their likelihoods
    "off_policy_pairs": TRAINS_OR_GENERATES,  # scores likelihoods with the model
    "figure": ("matplotlib",),  # draws
}


def import_statements(script: Path) -> str:
    """Every import statement of `script`, one per line, as the job executes them."""
    tree = ast.parse(script.read_text(), filename=str(script))
    return "\n".join(ast.unparse(node) for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom)))


# Runs in a fresh interpreter: preloads what every job pays anyway (none of WATCHED), then forks once per
# script, so each child pays only its own imports; the child reports the WATCHED packages it then holds.
_DRIVER = """
import json, os, sys
preload, watched, scripts = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
for module in preload:
    __import__(module)
before = [m for m in watched if m in sys.modules]
results = {}
for name, code in scripts.items():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            exec(compile(code, name, "exec"), {"__name__": "__job__"})
            out = {"loaded": [m for m in watched if m in sys.modules and m not in before]}
        except BaseException as err:
            out = {"error": f"{type(err).__name__}: {err}"}
        os.write(write, json.dumps(out).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as stream:
        results[name] = json.loads(stream.read())
    os.waitpid(pid, 0)
print(json.dumps({"preloaded_watched": before, "results": results}))
"""
BASE = ("numpy", "pandas", "pyarrow.parquet")  # nearly every job imports them; none is WATCHED


def loaded_by_each(scripts: list[Path], preload: tuple[str, ...] = BASE) -> dict[Path, frozenset[str]]:
    """The WATCHED packages each script's imports load beyond `preload` (which may hold allowed ones)."""
    codes = {str(script): import_statements(script) for script in scripts}
    done = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(preload), json.dumps(WATCHED), json.dumps(codes)],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert set(report["preloaded_watched"]) <= set(preload), report["preloaded_watched"]
    errors = {name: r["error"] for name, r in report["results"].items() if "error" in r}
    assert not errors, f"imports fail: {errors}"
    return {Path(name): frozenset(r["loaded"]) for name, r in report["results"].items()}


@cache
def _loaded_by_every_script() -> dict[str, frozenset[str]]:
    """Scripts allowed the torch stack get torch preloaded (one import of it for all of them)."""
    scripts = sorted(SCRIPTS.glob("*.py"))
    heavy = [s for s in scripts if "torch" in ALLOWED.get(s.stem, ())]
    light = [s for s in scripts if s not in heavy]
    found = {**loaded_by_each(light), **loaded_by_each(heavy, (*BASE, "torch"))}
    return {script.stem: loaded for script, loaded in found.items()}


@pytest.mark.parametrize("name", sorted(script.stem for script in SCRIPTS.glob("*.py")))
def test_a_job_imports_only_the_heavy_packages_its_work_needs(name):
    extra = _loaded_by_every_script()[name] - set(ALLOWED.get(name, ()))
    assert not extra, (f"workflow/scripts/{name}.py loads {sorted(extra)} at import time; import them inside "
                       "the function that needs them (python -X importtime shows which module pulls them in)")


def test_the_check_sees_a_package_pulled_in_by_a_library_module_inside_the_job_block(tmp_path):
    """The control: a script whose only heavy import is a `subnet_rl` module inside the job block."""
    script = tmp_path / "loads_a_model.py"
    script.write_text("from subnet_rl.jobs import snakemake_job\n\nwith snakemake_job(snakemake):\n"
                      "    from subnet_rl.models import load_checkpoint\n")
    assert "torch" in loaded_by_each([script])[script]


def test_every_allowance_names_a_script():
    scripts = {script.stem for script in SCRIPTS.glob("*.py")}
    assert set(ALLOWED) <= scripts
