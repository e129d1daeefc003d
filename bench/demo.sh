#!/usr/bin/env bash
# Time `make demo` from a fresh clone (no .venv, no results/), then per-stage figures.
# Usage: bench/demo.sh [CLONE_DIR]   (default: a new temporary folder)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
clone="${1:-$(mktemp -d)/subnet-rl}"
git clone --quiet "$repo" "$clone"
cd "$clone"
start=$(date +%s)
make demo > demo.log 2>&1
end=$(date +%s)
echo "make demo (install included): $((end - start)) s on $(nproc) cores ($(uname -m))"
.venv/bin/python bench/stage_times.py results/benchmarks
