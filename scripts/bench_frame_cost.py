#!/usr/bin/env python
"""Time and memory one BiRefNet frame costs, per backbone, at a given size (default 512x512).

Each backbone runs in its own subprocess so that peak RSS is that model's alone. Weights are
random (cost does not depend on their values). Usage:
    python scripts/bench_frame_cost.py [--size 512] [--runs 3] [--backbones pvt_v2_b0 swin_v1_t]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time


def measure(backbone: str, size: int, runs: int, precision: str) -> dict:
    """Run in the child: build, warm up once, then time ``runs`` single-frame forwards."""
    import torch

    from birefvid.models import BiRefNet
    from birefvid.runtime.device import pick_dtype

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    dtype = pick_dtype(precision, torch.device("cpu"))
    model = BiRefNet(backbone).eval().to(dtype)
    x = torch.randn(1, 3, size, size, dtype=dtype)
    with torch.inference_mode():
        model(x)  # warm-up: allocator and kernel selection
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    params = sum(p.numel() for p in model.parameters())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "backbone": backbone,
        "params_m": params / 1e6,
        "median_s": sorted(times)[len(times) // 2],
        "min_s": min(times),
        "peak_rss_mb": peak,
        "rss_before_model_mb": rss_before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--backbones", nargs="+", default=["pvt_v2_b0", "swin_v1_t"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.size, args.runs, args.precision)))
        return
    import torch

    print(f"# BiRefNet single-frame cost, {args.size}x{args.size}, {args.precision}, CPU")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'backbone':<11} {'params':>8} {'median s/frame':>15} {'min s':>7} {'vs first':>9} {'peak RSS MB':>12} {'RSS before model':>17}")
    first = None
    for backbone in args.backbones:
        cmd = [sys.executable, __file__, "--child", backbone, "--size", str(args.size), "--runs", str(args.runs), "--precision", args.precision]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        first = first or r["median_s"]  # the ratio is what survives a busy or different machine
        print(f"{r['backbone']:<11} {r['params_m']:>7.1f}M {r['median_s']:>15.2f} {r['min_s']:>7.2f} {r['median_s'] / first:>8.2f}x {r['peak_rss_mb']:>12.0f} {r['rss_before_model_mb']:>17.0f}")


if __name__ == "__main__":
    main()
