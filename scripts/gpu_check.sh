#!/usr/bin/env bash
# The GPU check: every GPU path at small size (nccl DDP, FSDP2, bf16, SyncBatchNorm, faiss-GPU
# k-means, the bf16 feature dump, AV pretraining steps with the XLS-R 300M shape), a few minutes
# on one GPU, then a pass/fail table with measured memory beside the dry-run estimate.
# Without a GPU (or with --list) it prints the commands it would run and exits 0.
#   bash scripts/gpu_check.sh [--list] [--work DIR] [--timeout SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/avsr ]; then
  echo "gpu_check: no .venv here; run 'bash scripts/setup.sh' first" >&2
  exit 1
fi
exec .venv/bin/avsr env --gpu-check "$@"
