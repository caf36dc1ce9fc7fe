#!/usr/bin/env bash
# Train the shipped `tiny` model: BiRefNet pvt_v2_b0 from scratch on procedural scenes.
#
# This is the exact recipe (data seed, size, steps, batch, lr) the shipped weights came from;
# rerunning it reproduces them on the same torch build. It checkpoints to $OUT/last.pt every
# 50 steps; run it again after an interruption and it resumes where it stopped.
# When `birefvid train` exists in the CLI this becomes one call to it with the same values.
#
#   scripts/train_tiny.sh [OUT_DIR]         # default runs/tiny
#   python scripts/eval_tiny.py --weights runs/tiny/model.safetensors --backbone pvt_v2_b0
set -euo pipefail

OUT="${1:-runs/tiny}"
PYTHON="${PYTHON:-python}"

SIZE=128          # training (and native inference) resolution
STEPS=800         # ~4 s/step on 2 CPU cores at 128 px, batch 4: about an hour
BATCH=4
LR=1e-3           # AdamW, 40-step warm-up, cosine to 1e-5
SEED=0            # data seed: scene i is make_scene(default_rng([SEED, i]))
INIT_SEED=0       # torch seed for the initial weights

exec "$PYTHON" - "$OUT" "$SIZE" "$STEPS" "$BATCH" "$LR" "$SEED" "$INIT_SEED" <<'EOF'
import logging
import sys

import torch

from birefvid.data import SceneDataset
from birefvid.models import BiRefNet
from birefvid.train import train

out, size, steps, batch, lr, seed, init_seed = sys.argv[1], *map(int, sys.argv[2:5]), float(sys.argv[5]), *map(int, sys.argv[6:8])
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
torch.manual_seed(init_seed)
model = BiRefNet(backbone="pvt_v2_b0")
result = train(
    model,
    SceneDataset(steps * batch, size, seed=seed),  # every step sees new scenes
    steps=steps,
    batch_size=batch,
    lr=lr,
    warmup_steps=40,
    device="cpu",
    precision="fp32",
    checkpoint_dir=out,
    checkpoint_every=50,
    resume=True,
    seed=seed,
    half=True,  # ships as float16 (half the size); the loader casts back
)
print(f"weights: {result.weights} (steps {result.step}, last loss {result.losses[-1] if result.losses else 'n/a'})")
EOF
