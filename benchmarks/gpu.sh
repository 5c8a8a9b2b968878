#!/usr/bin/env bash
# GPU check (a session lent a CUDA machine runs this; CI never does). Uses the machine's own
# python3 with PyTorch; the ml-100k cache travels with the checkout in .cache/movierec.
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
MOVIEREC_HOME="$PWD/.cache/movierec" PYTHONPATH=src timeout 420 python3 benchmarks/gpu_check.py "$@"
