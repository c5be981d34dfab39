#!/usr/bin/env bash
# GPU check (docs/scale-out.md): the transformers backend in bf16, a training step, and the vLLM backend
# when vLLM is installed, on one CUDA GPU, in well under 10 minutes and without downloads. Prints what ran
# and its figures (and writes them as JSON to $OUT/gpu_check.json when OUT is set).
#
#   benchmarks/gpu_check.sh [--model /local/model/folder]
#   WHEELS=/path/to/wheels benchmarks/gpu_check.sh   # install what is missing from local wheel files only
#   benchmarks/gpu_check.sh --cpu                    # a dry run of the script on a CPU
set -euo pipefail
cd "$(dirname "$0")/.."

# a checkout runs without being installed (as on a GPU machine whose image already holds the dependencies)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# cuBLAS is bitwise repeatable only with a fixed workspace (for the deterministic-mode repeat)
export CUBLAS_WORKSPACE_CONFIG="${CUBLAS_WORKSPACE_CONFIG:-:4096:8}"
python - <<'PY' || missing=1
import importlib, sys
need = ["torch", "transformers", "tokenizers", "safetensors", "sympy", "networkx", "selfimprove"]
gone = [m for m in need if importlib.util.find_spec(m) is None]
sys.exit(f"missing: {' '.join(gone)}" if gone else 0)
PY
if [[ "${missing:-0}" == 1 ]]; then
    if [[ -z "${WHEELS:-}" ]]; then
        echo "gpu_check: install selfimprove first (pip install -e .), or set WHEELS to a folder of wheel files" >&2
        exit 2
    fi
    # no index: only the given files, never a download
    pip install --no-index --find-links "$WHEELS" -e . >&2
fi

python -c "import torch; print(f'torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}')"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
args=("$@")
if [[ -n "${OUT:-}" ]]; then args+=(--out "$OUT/gpu_check.json"); fi
exec timeout 570 python benchmarks/gpu_check.py "${args[@]}"
