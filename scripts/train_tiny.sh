#!/usr/bin/env bash
# Train the shipped `tiny` model: BiRefNet pvt_v2_b0 from scratch on generated scenes.
#
# The exact recipe the shipped weights come from. Measured on 2 CPU cores, a 128 px batch-4
# step takes ~1.55 s (fp32; the decoder's deformable conv uses birefvid's grid_sample version
# while training on CPU, see scripts/bench_train_step.py), so 2400 steps take about an hour.
# Every step sees 4 new scenes (9600 in all, data seed 0: scene i = make_scene(default_rng([0, i]))).
# It checkpoints to OUT/last.pt every 50 steps;
# run the same command again after an interruption and it resumes from there.
#
#   scripts/train_tiny.sh [OUT_DIR]          # default runs/tiny
#   python scripts/eval_tiny.py --weights runs/tiny/model.safetensors --backbone pvt_v2_b0
set -euo pipefail

OUT="${1:-runs/tiny}"
BIREFVID="${BIREFVID:-birefvid}"

exec "$BIREFVID" train \
    --data scenes \
    --out "$OUT" \
    --backbone pvt_v2_b0 \
    --size 128 \
    --steps 2400 \
    --batch-size 4 \
    --scenes 9600 \
    --lr 1e-3 \
    --warmup-steps 40 \
    --seed 0 \
    --device cpu \
    --precision fp32 \
    --checkpoint-every 50 \
    --resume \
    --half
