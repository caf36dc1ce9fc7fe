"""``birefvid image IN... -o OUT``: RGBA cut-outs (or masks) of still images as PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..cli import add_model_options, segmenter_from_args
from ..errors import SinkError, SourceError
from ..io.atomic import AtomicFile, check_target
from ..io.image_source import IMAGE_EXTENSIONS, list_images, read_rgb

HELP = "cut subjects out of images: RGBA PNGs (or --output mask)"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="image files, folders of images, or glob patterns")
    parser.add_argument("-o", "--out", required=True, help="output folder (or a .png path for a single input)")
    parser.add_argument("--output", choices=["rgba", "mask"], default="rgba", help="what to write (default: rgba)")
    parser.add_argument("--no-foreground", action="store_true", help="keep source colours at soft edges (skip foreground colour estimation)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_model_options(parser)
    parser.set_defaults(run=run)


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Expand files, folders and globs into image paths, in the order given."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_file():
            paths.append(path)
        elif path.exists() or any(c in item for c in "*?["):
            paths.extend(list_images(item))
        else:
            raise SourceError(f"input not found: {item}")
    return paths


def plan_outputs(inputs: list[Path], out: Path, overwrite: bool) -> list[Path]:
    """Target path of each input; checked up front so no work is done for an impossible run."""
    if len(inputs) == 1 and out.suffix.lower() == ".png":
        targets = [out]
    else:
        if out.suffix.lower() in IMAGE_EXTENSIONS:
            raise SinkError(f"{len(inputs)} inputs need an output folder, not the file {out}")
        if out.exists() and not out.is_dir():
            raise SinkError(f"output {out} is a file; pass a folder for several images")
        out.mkdir(parents=True, exist_ok=True)
        targets = [out / f"{p.stem}.png" for p in inputs]
    seen: dict[Path, Path] = {}
    for source, target in zip(inputs, targets):
        if target in seen:
            raise SinkError(f"{source} and {seen[target]} would both be written to {target}; rename one")
        seen[target] = source
        check_target(target, overwrite=overwrite, is_dir=False)
    return targets


def cutout(segmenter, image: np.ndarray, kind: str, foreground: bool) -> np.ndarray:
    """The PNG pixels for one RGB image: RGBA (straight alpha) or an 8-bit mask."""
    from ..compose import estimate_foreground, to_mask, to_rgba

    batch = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0)
    alphas = segmenter.predict(batch)
    if kind == "mask":
        return to_mask(alphas)[0, 0].cpu().numpy()
    images = batch.to(alphas.device)
    fg = estimate_foreground(images.float() / 255.0, alphas) if foreground else None
    return to_rgba(images, alphas, fg)[0].permute(1, 2, 0).cpu().numpy()


def write_png(path: Path, pixels: np.ndarray) -> None:
    """Write atomically: a temp file beside the target, renamed when complete."""
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA)
    atomic = AtomicFile(path)
    try:
        ok, data = cv2.imencode(".png", pixels)
        if not ok:
            raise SinkError(f"could not encode {path} as PNG")
        atomic.temp.write_bytes(data.tobytes())
        atomic.commit()
    finally:
        atomic.discard()


def run(args: argparse.Namespace) -> int:
    inputs = collect_inputs(args.inputs)
    targets = plan_outputs(inputs, Path(args.out), args.overwrite)
    segmenter = segmenter_from_args(args)
    bar = tqdm(zip(inputs, targets), total=len(inputs), unit="img", disable=args.quiet or len(inputs) < 2 or None)
    for source, target in bar:
        write_png(target, cutout(segmenter, read_rgb(source), args.output, not args.no_foreground))
    return 0
