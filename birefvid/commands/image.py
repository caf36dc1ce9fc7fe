"""``birefvid image IN... -o OUT``: RGBA cut-outs (or masks) of still images as PNG."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .options import add_matte_options, add_model_options, inference_spec, matte_options, model_spec

HELP = "cut subjects out of images: RGBA PNGs (or --output mask)"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="image files, folders of images, or glob patterns")
    parser.add_argument("-o", "--out", required=True, help="output folder (or a .png path for a single input)")
    parser.add_argument("--output", choices=["rgba", "mask"], default="rgba", help="what to write (default: rgba)")
    parser.add_argument("--no-foreground", action="store_true", help="keep source colours at soft edges (skip foreground colour estimation)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary line")
    add_matte_options(parser)
    add_model_options(parser)
    parser.set_defaults(run=run)


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Expand files, folders and globs into image paths, in the order given."""
    from ..errors import SourceError
    from ..io.image_source import is_glob, list_images

    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_file():
            paths.append(path)
        elif path.exists() or is_glob(item):
            paths.extend(list_images(item))
        else:
            raise SourceError(f"input not found: {item}")
    return paths


def plan_outputs(inputs: list[Path], out: Path, overwrite: bool) -> list[Path]:
    """Target path of each input; checked up front so no work is done for an impossible run."""
    from ..errors import SinkError
    from ..extensions import IMAGE_EXTENSIONS
    from ..io.atomic import check_target

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


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from ..compose.compositor import Compositor
    from ..errors import SourceError
    from ..io.base import check_picture_size
    from ..io.image_sink import write_png
    from ..io.image_source import read_rgb
    from ..job import InferenceSpec, MatteSpec
    from ..runtime.file_job import segmenter_for
    from ..runtime.video_job import to_sink_layout

    spec = model_spec(args)
    spec.validate()
    inference: InferenceSpec = inference_spec(args)
    inference.validate()
    matte = MatteSpec(**matte_options(args))  # type: ignore[arg-type]
    matte.validate()
    inputs = collect_inputs(args.inputs)
    targets = plan_outputs(inputs, Path(args.out), args.overwrite)
    segmenter = segmenter_for(spec, inference)
    compositor = Compositor("mask" if args.output == "mask" else "alpha", foreground=not args.no_foreground, matte=matte)
    bar = tqdm(zip(inputs, targets), total=len(inputs), unit="img", disable=args.quiet or len(inputs) < 2 or None)
    unreadable: list[Path] = []
    for source, target in bar:
        try:
            image = read_rgb(source)
            check_picture_size(image.shape[1], image.shape[0], source)
        except SourceError:
            if len(inputs) == 1:
                raise
            unreadable.append(source)  # one damaged photo does not stop the other hundred
            continue
        batch = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0)
        alphas = segmenter.predict(batch)
        pixels = compositor(batch.to(alphas.device), alphas)
        write_png(target, to_sink_layout(pixels.cpu().numpy())[0])
    if unreadable:
        names = ", ".join(str(p) for p in unreadable[:3]) + (f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else "")
        written = len(inputs) - len(unreadable)
        raise SourceError(f"{len(unreadable)} of {len(inputs)} images could not be read or used and were skipped: {names} "
                          f"(the other {written} were written to {args.out})")  # fmt: skip
    if not args.quiet:
        where = targets[0] if len(targets) == 1 else f"{len(targets)} PNGs in {args.out}"
        print(f"wrote {where}", file=sys.stderr)
    return 0
