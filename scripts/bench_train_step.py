#!/usr/bin/env python
"""Time one BiRefNet training step on this device with torchvision's deformable conv vs ours, side by side.

Both variants train the same model (same seed, same batch) with the full objective; they differ
only in the decoder's deformable convolution: torchvision's ``deform_conv2d`` or
``birefvid.models.deform.sampled_deform_conv2d`` (the one ``birefvid train`` uses on CPU).
Runs alternate so that machine load hits both alike. Usage:
    python scripts/bench_train_step.py [--backbone pvt_v2_b0] [--size 128] [--batch 4] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from torchvision.ops import deform_conv2d

import birefvid.models.blocks as blocks
from birefvid.models import BiRefNet
from birefvid.models.deform import sampled_deform_conv2d
from birefvid.train import birefnet_loss


def torchvision_op(x, offset, weight, padding, mask):
    return deform_conv2d(x, offset, weight, None, padding=padding, mask=mask)


VARIANTS = {"torchvision": torchvision_op, "sampled": sampled_deform_conv2d}


def step_time(model: BiRefNet, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    """One forward, loss, backward and optimiser step; returns seconds."""
    start = time.perf_counter()
    loss, _ = birefnet_loss(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="pvt_v2_b0")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=5, help="timed steps per variant (after one warm-up each)")
    args = p.parse_args()

    torch.manual_seed(0)
    model = BiRefNet(args.backbone).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = (torch.rand(args.batch, 1, args.size, args.size) > 0.5).float()
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for round_ in range(args.steps + 1):
        for name, op in VARIANTS.items():
            blocks.modulated_deform_conv2d = op  # the decoder looks the op up at call time
            t = step_time(model, opt, x, y)
            if round_:  # round 0 warms up both
                times[name].append(t)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    report = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "backbone": args.backbone, "size": args.size, "batch": args.batch, "steps": args.steps,
        "median_s_per_step": {k: round(v, 3) for k, v in med.items()},
        "speedup": round(med["torchvision"] / med["sampled"], 2),
    }
    print(json.dumps(report, indent=2))
    print(f"training step: torchvision {med['torchvision']:.2f} s, sampled {med['sampled']:.2f} s, "
          f"{report['speedup']:.2f}x faster")


if __name__ == "__main__":
    main()
