#!/usr/bin/env bash
# Time the complete miniature study (config/study.yaml) from a fresh clone, then per-stage figures.
# Usage: bench/study.sh [CLONE_DIR]   (default: a new temporary folder). Uses this checkout's .venv.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
clone="${1:-$(mktemp -d)/subnet-rl}"
git clone --quiet "$repo" "$clone"
cd "$clone"
export PYTHONPATH="$clone/src"
start=$(date +%s)
"$repo/.venv/bin/snakemake" --configfile config/study.yaml --cores 2 > study.log 2>&1
"$repo/.venv/bin/snakemake" --configfile config/study.yaml --report results/report.html >> study.log 2>&1
end=$(date +%s)
echo "study (config/study.yaml, report included): $((end - start)) s on 2 of $(nproc) cores ($(uname -m))"
"$repo/.venv/bin/python" bench/stage_times.py results/benchmarks
