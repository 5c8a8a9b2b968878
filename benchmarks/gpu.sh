#!/usr/bin/env bash
# GPU check (a session lent a CUDA machine runs this; CI never does): issue 16's GPU path, one
# JSON. On the GPU: `bash benchmarks/gpu.sh` (writes $OUT/gpu.json when the device tool sets OUT,
# else benchmarks/results/gpu.json; the script's own budget is 380 s, the timeout below 420 s,
# inside the 8 minutes the issue allows). On a CPU: `bash benchmarks/gpu.sh --dry-run` runs every
# code path on a small set in under 2 minutes (benchmarks/results/gpu-dryrun.json).
# Python: $PYTHON, else the machine's python3 with PyTorch. The ml-100k u1 check reads
# $MOVIEREC_HOME, else .cache/movierec of this checkout (carry it to the GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
export MOVIEREC_HOME="${MOVIEREC_HOME:-$PWD/.cache/movierec}"
PYTHONPATH=src timeout 420 "${PYTHON:-python3}" benchmarks/gpu_check.py "$@"
