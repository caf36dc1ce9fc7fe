#!/usr/bin/env bash
# Train the shipped `tiny` model: BiRefNet pvt_v2_b0 from scratch on generated scenes.
#
# The exact recipe the shipped weights come from, in two stages on 2 CPU cores (fp32):
#   1. 2400 steps at 128 px, batch 4, AdamW lr 1e-3 (~1.4 s a step: 55 minutes). Every step sees
#      4 new scenes (9600 in all, data seed 0: scene i = make_scene(default_rng([0, i]))).
#   2. 160 steps at 256 px, batch 4, lr 2e-4, from stage 1's weights, on 640 further scenes
#      (data seed 1), so the model's native size is 256 px (~6 s a step: 16 minutes).
# The decoder's deformable conv uses birefvid's grid_sample version while training on CPU (see
# scripts/bench_train_step.py). Each stage checkpoints to its folder's last.pt;
# run the same command again after an interruption and it resumes from there.
#
#   scripts/train_tiny.sh [OUT_DIR]          # default runs/tiny; weights in OUT_DIR/model.safetensors
#   python scripts/eval_tiny.py --weights runs/tiny/model.safetensors --backbone pvt_v2_b0
set -euo pipefail

OUT="${1:-runs/tiny}"
BIREFVID="${BIREFVID:-birefvid}"

"$BIREFVID" train \
    --data scenes \
    --out "$OUT/stage1-128px" \
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

exec "$BIREFVID" train \
    --data scenes \
    --init "$OUT/stage1-128px/model.safetensors" \
    --out "$OUT" \
    --size 256 \
    --steps 160 \
    --batch-size 4 \
    --scenes 640 \
    --lr 2e-4 \
    --warmup-steps 10 \
    --seed 1 \
    --device cpu \
    --precision fp32 \
    --checkpoint-every 40 \
    --resume \
    --half
