#!/usr/bin/env bash
# Rebuild the stand-in encoder shipped in avsr/corpus/encoder/ (what `make demo` starts from).
# Audio only, no labels: 3 h of the embedded corpus's speech (9 languages, training speakers
# only), MFCC k-means units (k=100), then masked prediction of those units by the tiny
# XLS-R-shaped encoder for 8000 updates (HuBERT iteration 1), saved in the project's encoder
# format. About 30-40 minutes on 2 CPU cores.
#   bash scripts/build_shipped_encoder.sh [WORK_DIR]     (default: shipped_encoder_work)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-shipped_encoder_work}
A=".venv/bin/avsr"
$A corpus speech --out "$W/speech" --hours 3 --seed 1000 --workers 2
for s in train valid; do $A features --manifest "$W/speech/$s.tsv" --encoder mfcc --out "$W/mfcc"; done
$A kmeans fit --feats "$W/mfcc" --out "$W/km0" --k 100 --sample-share 0.3 --seed 0
$A kmeans apply --model "$W/km0" --feats "$W/mfcc" --out "$W/labels0" --data "$W/speech"
$A pretrain --stage0 --config configs/stage0_tiny.yaml --data "$W/speech" --labels "$W/labels0" --out "$W/run0" \
  --set train.max_updates=8000 --set train.seed=0 --set data.max_frames_per_batch=400 \
  --set train.save_every=1000 --set train.valid_every=1000 --set optim.warmup_updates=400 --set optim.lr=2e-3
cp "$W/run0/encoder/config.yaml" "$W/run0/encoder/model.safetensors" avsr/corpus/encoder/
echo "shipped encoder -> avsr/corpus/encoder/ (curves: $W/run0/metrics.jsonl)"
