"""``birefvid image IN... -o OUT``: cut-outs of still images (RGBA, mask, greenscreen, a new background
or a blurred one) as PNG, WebP, JPEG or TIFF."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, NamedTuple, Optional, Sequence

from ..extensions import HEIF_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from ..job import output_kind
from ..linked_folders import leads_back_up
from .options import (BLUR_SIGMA, KEY_COLOR, add_matte_options, add_model_options, add_overlay_options, bit_depth_arg, foreground_wanted, inference_spec,
                      matte_options, model_spec, only_for)

if TYPE_CHECKING:
    from ..io.image_sink import PixelDensity

log = logging.getLogger(__name__)

HELP = "cut subjects out of images: RGBA PNGs, masks, or the subject on a new or blurred background (PNG, WebP, JPEG, TIFF)"
OUTPUTS = ("rgba", "mask", "foreground", "green", "composite", "blur", "overlay")
COMPOSITOR_KIND = {"rgba": "alpha", "mask": "mask", "foreground": "foreground", "green": "green", "composite": "composite", "blur": "blur",
                   "overlay": "overlay"}  # fmt: skip


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="image files, folders of images, or glob patterns; - reads one picture from standard input")
    parser.add_argument("-o", "--out", required=True, help="output folder, or a .png, .webp, .jpg or .tif file for a single input; "
                        "- writes it to standard output (PNG, or --ext's)")  # fmt: skip
    parser.add_argument("--output", choices=OUTPUTS, type=output_kind, default="rgba", metavar="KIND",  # the choices in the usage passed 80 columns
                        help=f"what to write ({', '.join(OUTPUTS)}): the RGBA cut-out, its mask, its colours "
                        "alone without alpha (foreground), the subject over a key colour (green), over --background (composite) or over its own blurred background, "
                        "or the picture with the subject tinted and outlined, to check the matte (overlay) (default: rgba)")  # fmt: skip
    parser.add_argument("-r", "--recursive", action="store_true", help="pictures in subfolders at any depth too: the output "
                        "folder mirrors the tree (OUT/day1/a.png); hidden folders and the output folder are left out")  # fmt: skip
    parser.add_argument("--ext", default=None, help="file type written into an output folder or to standard output (-o -): .png (default), .webp, .jpg or .tif "
                        "(JPEG has no transparency: for foreground, mask, green, composite, blur and overlay)")  # fmt: skip
    parser.add_argument("--max-size", type=int, metavar="PX", help="scale each picture down so its longer side is at most PX "
                        "(aspect kept; e.g. 2000 for a web shop): the model, compositing and writing then work at that size")  # fmt: skip
    parser.add_argument("--quality", type=int, metavar="Q", help="JPEG and WebP quality, 1-100 (default 95 for JPEG, 90 for "
                        "WebP's colour; WebP's alpha stays lossless); PNG and TIFF are lossless")  # fmt: skip
    parser.add_argument("--square", action="store_true", help="pad each picture to a square, centred, as shops show products: "
                        "transparent in the cut-out, the background in a composite (--background white), the key colour in green")  # fmt: skip
    parser.add_argument("--srgb", action="store_true", help="convert a photo in another colour profile (Display P3, Adobe RGB) "
                        "to sRGB and write it untagged, for shops and sites that need sRGB or drop profiles (default: keep its profile)")  # fmt: skip
    parser.add_argument("--no-exif", action="store_true", help="write no EXIF or XMP (camera, lens, exposure, capture date, artist, "
                        "copyright, keywords, caption), as a web shop's pictures often go; the colour profile and DPI stay: they say how to show the pixels")  # fmt: skip
    parser.add_argument("--background", help="for --output composite: a colour (#rrggbb, name, r,g,b) or an image (scaled to cover each picture)")
    parser.add_argument("--key-color", help=f"for --output green: the key colour (default {KEY_COLOR})")
    parser.add_argument("--blur-sigma", type=float, help=f"for --output blur: background blur strength in pixels (default {BLUR_SIGMA:g})")
    add_overlay_options(parser)
    parser.add_argument("--no-foreground", action="store_true", help="keep source colours at soft edges (skip foreground colour estimation)")
    parser.add_argument("--bit-depth", type=bit_depth_arg, default="auto", metavar="{auto,8,16}",
                        help="auto (default): a 16-bit input (PNG, TIFF) gives a 16-bit PNG or TIFF; 8: 8-bit pictures; "
                             "16: 16-bit PNGs or TIFFs from any input (the matte's full precision)")  # fmt: skip
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing output files")
    existing.add_argument("--skip-existing", action="store_true", help="keep the pictures already written and cut out the rest: "
                          "a rerun goes on where an interrupted one stopped (each picture is written whole or not at all)")  # fmt: skip
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary line")
    parser.add_argument("--report", help="write a JSON report (pictures written, kept and skipped, time per step, the model and "
                        "options); '-' prints it on standard output")  # fmt: skip
    add_matte_options(parser)
    add_model_options(parser)
    parser.set_defaults(run=run)


# what `image` reads from a folder or glob: the image-sequence pictures, plus GIF and AVIF stills (a GIF's
# first frame, as a single .gif given by name is read; AVIF where the installed Pillow/OpenCV decode it;
# HEIC/HEIF where pillow-heif is installed): they were skipped without a word in folders although they work by name
STILL_PICTURES = IMAGE_EXTENSIONS | HEIF_EXTENSIONS | {".gif", ".avif"}
# `-o NAME.EXT` with one of these names a file birefvid cannot write, not a folder: `-o cut.gif` made a folder
# cut.gif/ holding cut.png. A folder name with another dot (`-o shoot.2026`) is still a folder
FILE_SUFFIXES = STILL_PICTURES | VIDEO_EXTENSIONS | {".apng", ".jxl", ".jp2", ".psd", ".exr", ".tga", ".svg", ".pdf"}


def _exr_is_process(picture: Optional[Path], out: Path) -> str:
    """Why ``image`` writes no OpenEXR and the ``process`` command that does: ``image``'s outputs are display pictures
    (an ICC profile, EXIF), while an EXR holds linear light, which ``process`` decodes a picture's sRGB values into,
    one frame of a sequence (its folder its own: ``cut.exr`` -> ``cut/cut.%04d.exr``). ``picture`` None: the picture
    came on standard input, which ``process`` does not read, so the line asks for it saved to a file first."""
    import shlex

    pattern = shlex.quote(str(out.with_suffix("") / f"{out.stem}.%04d.exr"))
    why = (f"cannot write {out}: birefvid image writes display pictures (.png, .tif, .webp, .jpg); OpenEXR's linear "
           f"light is written by process, as a one-frame sequence")  # fmt: skip
    if picture is None:
        return f"{why}, from a file, not standard input: save the picture (photo.png), then birefvid process photo.png -o {pattern}"
    return f"{why}: birefvid process {shlex.quote(str(picture))} -o {pattern}"


class Picture(NamedTuple):
    """An input picture and the subfolder (under the folder it was found in) its cut-out mirrors."""

    path: Path
    sub: Path = Path()


def collect_inputs(inputs: list[str], out: Optional[str] = None, recursive: bool = False) -> list[Picture]:
    """Expand files, folders and globs into pictures, in the order given (``out``: not an input's subfolder);
    ``recursive``: a folder's subfolders at any depth too, each picture with the subfolder its cut-out goes to."""
    from ..errors import SourceError, input_not_found
    from ..io.image_source import is_glob, list_images

    from ..users import unreadable_line

    paths: list[Picture] = []
    for item in inputs:
        path = Path(item)
        closed = unreadable_line(path)  # in another user's closed folder: is_file() raised, a traceback
        if closed:
            raise SourceError(closed)
        if path.is_file():
            paths.append(Picture(path))
        elif path.is_dir() and not is_glob(item):
            videos = sorted(f.name for f in path.iterdir() if f.suffix.lower() in VIDEO_EXTENSIONS - STILL_PICTURES and f.is_file())
            if recursive:
                found = _once_each(list(_tree(path, Path(), frozenset({os.path.realpath(path)}), _real(out))))
                if not found:
                    kinds = ", ".join(sorted(STILL_PICTURES))
                    why = f"no images found in {path} or its subfolders (expected files ending in {kinds})"
                    raise SourceError(f"{why}; {_videos_named(path, videos)}" if videos else why)
                paths.extend(found)
                if videos:
                    log.warning("%s: %s", path, _videos_named(path, videos))
                continue
            subs = _subfolders_with_pictures(path, out)
            try:
                paths.extend(Picture(p) for p in list_images(item, STILL_PICTURES))
            except SourceError as e:
                if videos:
                    raise SourceError(f"{e}; {_videos_named(path, videos)}") from None
                if not subs:
                    raise
                raise SourceError(f"no pictures directly in {path}; {_subfolders_named(path, subs)}") from None
            if subs:
                log.warning("%s: pictures in subfolders are not read; %s", path, _subfolders_named(path, subs))
            if videos:  # transparent-background's --source DIR takes both: they were left out without a word
                log.warning("%s: %s", path, _videos_named(path, videos))
        elif path.exists() or is_glob(item):
            paths.extend(Picture(p) for p in list_images(item, STILL_PICTURES))
        else:
            raise SourceError(input_not_found(item))
    keep = set(_without_unreadable_heif([p.path for p in paths]))
    return [p for p in paths if p.path in keep]


def refuse_missing_input(inputs: list[str]) -> None:
    """SourceError 'input not found' where ``collect_inputs`` would raise it first: the first missing input with only
    picture files before it (a folder or a glob is read, and may be warned of or refused, so it and those after it are
    left to ``collect_inputs``). Light (no OpenCV, unlike its ``is_glob``): a mistyped name answers before the imports."""
    from ..errors import SourceError, input_not_found
    from ..users import unreadable_line

    for item in inputs:
        path = Path(item)
        if unreadable_line(path) is not None or any(c in item for c in "*?["):  # io.image_source.GLOB_CHARS
            return
        if path.is_file():
            continue
        if path.is_dir() or path.exists():
            return
        raise SourceError(input_not_found(item))


def _real(path: Optional[str]) -> Optional[str]:
    """``path`` with its links resolved (None stays None): how folders are compared."""
    return os.path.realpath(path) if path is not None else None


def _tree(folder: Path, sub: Path, ancestors: frozenset[str], skip: Optional[str]) -> Iterator[Picture]:
    """The pictures under ``folder`` at any depth with their subfolder, as ``batch --recursive`` walks: hidden
    files and folders and the output folder ``skip`` left out, linked folders followed but not back up (a loop)."""
    from ..io.image_source import natural_key

    try:
        entries = sorted((e for e in folder.iterdir() if not e.name.startswith(".")), key=natural_key)
    except OSError as e:  # a drive's lost+found or "System Volume Information": the rest of the shoot goes on
        log.warning("%s: not read (%s)", folder, e.strerror or e)
        return
    yield from (Picture(e, sub) for e in entries if e.suffix.lower() in STILL_PICTURES and e.is_file())
    for entry in entries:
        real = os.path.realpath(entry)
        if not entry.is_dir() or real == skip:
            continue
        if leads_back_up(real, ancestors):  # a loop, or the folder above the shoot (`ln -s ../..`): all its siblings
            log.warning("%s is a link to %s, a folder that holds it: not followed (the search would go round)", entry, real)
        else:
            yield from _tree(entry, sub / entry.name, ancestors | {real}, skip)


def _once_each(found: list[Picture]) -> list[Picture]:
    """Each real file once, under its name without links where it has one: a linked folder (``latest -> day2``)
    would cut every picture out twice."""
    groups: dict[str, list[Picture]] = {}
    for f in found:
        groups.setdefault(os.path.realpath(f.path), []).append(f)
    keep = {id(next((f for f in group if os.path.realpath(f.path) == os.path.abspath(f.path)), group[0])) for group in groups.values()}
    dropped = len(found) - len(keep)
    if dropped:
        log.warning("%d picture%s reached twice through a linked folder, cut out once", dropped, "s" if dropped > 1 else "")
    return [f for f in found if id(f) in keep]


def _subfolders_with_pictures(folder: Path, out: Optional[str] = None) -> list[str]:
    """The names of ``folder``'s (non-hidden) subfolders holding pictures at any depth: a folder's pictures are
    those directly in it, and a shoot sorted into day1/, day2/ was cut out in part without a word."""
    skip = os.path.realpath(out) if out is not None else None  # `-o photos/cutouts/`: the cut-outs are no input
    names = []
    for sub in sorted(d for d in folder.iterdir() if not d.name.startswith(".") and d.is_dir() and os.path.realpath(d) != skip):
        if _holds_pictures(sub, skip):
            names.append(sub.name)
    return names


def _holds_pictures(folder: Path, skip: Optional[str]) -> bool:
    """Whether ``folder`` holds pictures at any depth outside the output folder ``skip`` (`-o shoot/out/cutouts/`
    named ``out`` as a subfolder to add, for the cut-outs of an earlier run)."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if os.path.realpath(os.path.join(root, d)) != skip]
        if any(Path(f).suffix.lower() in STILL_PICTURES for f in files):
            return True
    return False


def _videos_named(folder: Path, videos: list[str]) -> str:
    """Which videos a folder holds beside its pictures, and the command that cuts them out."""
    shown = ", ".join(videos[:3]) + (f" and {len(videos) - 3} more" if len(videos) > 3 else "")
    count = "1 video is" if len(videos) == 1 else f"{len(videos)} videos are"
    return f"{count} not read ({shown}): `birefvid batch {folder} --output-dir OUT` cuts out videos"


def _subfolders_named(folder: Path, subs: list[str]) -> str:
    """Which subfolders hold pictures, and how to include them."""
    shown = ", ".join(subs[:3]) + (f" and {len(subs) - 3} more" if len(subs) > 3 else "")
    count = "1 subfolder holds" if len(subs) == 1 else f"{len(subs)} subfolders hold"
    return f"{count} some ({shown}): add --recursive (OUT mirrors the subfolders), or name each as an input, e.g. `birefvid image {folder / subs[0]} -o OUT`"


def _without_unreadable_heif(paths: list[Path]) -> list[Path]:
    """``paths`` less its HEIC/HEIF pictures when pillow-heif is missing, with one warning saying how many and why
    (an iPhone folder's photos were skipped without a word); none left is the error naming the extra."""
    from ..errors import SourceError
    from ..io import heif

    skipped = [p for p in paths if heif.is_heif(p)]
    if not skipped or heif.available():
        return paths
    if len(skipped) == len(paths):
        more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        raise SourceError(f"{skipped[0]}{more}: {heif.INSTALL}")
    log.warning("skipped %d HEIC/HEIF picture%s (%s%s): %s", len(skipped), "s" if len(skipped) > 1 else "", skipped[0],
                ", ..." if len(skipped) > 1 else "", heif.INSTALL)  # fmt: skip
    return [p for p in paths if not heif.is_heif(p)]


def plan_outputs(
    inputs: list[Path], out: Path, overwrite: bool, ext: Optional[str] = None, transparent: bool = True, skip_existing: bool = False,
    subs: Optional[Sequence[Path]] = None,
) -> list[Path]:
    """Target path of each input; checked up front so no work is done for an impossible run.

    A single input goes to ``out`` when it names a picture file; otherwise ``out`` is a folder
    and each picture is written into it as ``<name><ext>``; a missing folder is made by ``run``
    with the first picture written. ``transparent``: the output has an alpha channel.
    ``skip_existing``: an existing file is no clash (``run`` leaves it as it is). ``ext`` None: .png.
    ``subs``: each input's subfolder under ``out`` (``--recursive``: ``out/day1/a.png``).
    """
    from ..errors import SinkError
    from ..file_names import name_too_long
    from ..io.atomic import check_target, folds_names, name_fold, one_file_by_case, refuse_link_loop
    from ..io.image_sink import STILL_FORMATS

    refuse_link_loop(out)  # a link in a loop: every look at it below (resolve) raised RuntimeError
    given = ext
    ext = ".png" if ext is None else ext.lower() if ext.startswith(".") else f".{ext.lower()}"
    suffix = out.suffix.lower()
    folder = not (len(inputs) == 1 and suffix in STILL_FORMATS)
    if not folder:
        same = {".jpeg": ".jpg", ".tiff": ".tif"}
        if given is not None and same.get(ext, ext) != same.get(suffix, suffix):  # it was ignored: `-o cut.png --ext .webp` wrote a PNG
            raise SinkError(f"--ext {ext} names the file type in an output folder, and -o {out.name} names a {suffix} file; "
                            f"write -o {out.with_suffix(ext).name}, or drop --ext")  # fmt: skip
        targets = [out]
    else:
        if suffix in FILE_SUFFIXES:
            if suffix == ".exr" and len(inputs) == 1:
                raise SinkError(_exr_is_process(inputs[0], out))
            if len(inputs) == 1:
                raise SinkError(f"cannot write {out}: expected {', '.join(STILL_FORMATS)} (or a folder)")
            raise SinkError(f"{len(inputs)} inputs need an output folder, not the file {out}")
        if ext not in STILL_FORMATS:
            raise SinkError(f"--ext {ext}: expected {', '.join(STILL_FORMATS)}")
        if out.exists() and not out.is_dir():
            raise SinkError(f"output {out} is a file; pass a folder for several images")
        targets = [out / sub / f"{p.stem}{ext}" for p, sub in zip(inputs, subs or [Path()] * len(inputs))]
        for source, target in zip(inputs, targets):  # a 251-byte photo.png makes a 256-byte photo.webp: a traceback at its first look
            too_long = name_too_long(target)
            if too_long:
                raise SinkError(f"{source} would write {target.name}, but {too_long}; rename the picture or pick a shorter --ext")
    if transparent and not STILL_FORMATS[targets[0].suffix.lower()]:
        raise SinkError(f"{targets[0]}: JPEG has no transparency; write .png, .webp or .tif, or choose an opaque --output "
                        "(foreground, mask, green, composite, blur, overlay)")  # fmt: skip
    new_folder = folder and not out.exists()
    if new_folder:  # made in run() with the first picture written, so a run that writes none leaves none
        ancestor = next(p for p in out.absolute().parents if p.exists())
        if not ancestor.is_dir():
            raise SinkError(f"cannot create the folder {out}: {ancestor} is a file")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise SinkError(f"cannot create the folder {out}: {ancestor} is not writable")
    seen: dict[Path, Path] = {}
    # folded by their path under out: day1/a.png and day2/a.png are two files anywhere
    folding = folder and len({name_fold(str(t.relative_to(out))) for t in targets}) < len(set(targets)) and folds_names(out)
    if folding:
        # IMG_1.JPG and img_1.jpg: one file on this disk (an exFAT card, a Mac's), the second cut-out over the first
        by_fold: dict[str, Path] = {}
        targets = [by_fold.setdefault(name_fold(str(t.relative_to(out))), t) for t in targets]
    originals = {p.resolve() for p in inputs}
    by_case = {str(p).casefold(): p for p in originals}  # IMG_1.JPG, written as IMG_1.jpg on macOS' disk: the same file
    for source, target in zip(inputs, targets):
        where = target.resolve()
        if where in originals or one_file_by_case(where, by_case.get(str(where).casefold())):
            # `image photos/ -o photos/ --overwrite` replaced the photos with their cut-outs
            raise SinkError(f"{target} is one of the inputs; write the cut-outs to another file or folder")
        if target in seen:
            why = " (one file on this disk, which does not tell letter case apart)" if folding else ""
            raise SinkError(f"{source} and {seen[target]} would both be written to {target}{why}; rename one")
        seen[target] = source
        if not new_folder:  # nothing can be in the way in a folder yet to be made
            if folder and target.is_file() and not (overwrite or skip_existing):  # an interrupted run's: say how to resume it
                raise SinkError(f"output exists: {target} (use --overwrite to redo it, or --skip-existing to keep the "
                                "pictures already written and cut out the rest)")  # fmt: skip
            check_target(target, overwrite=overwrite or (skip_existing and target.is_file()), is_dir=False, replaces=overwrite)
    return targets


def run(args: argparse.Namespace, segmenter: Any = None) -> int:
    """Cut out ``args.inputs``; ``segmenter``: a model already loaded (``birefvid serve`` loads it once for every request).
    ``-`` reads the picture from standard input, ``-o -`` writes its cut-out to standard output (``image_stdio``)."""
    from . import image_stdio

    if image_stdio.uses_standard_streams(args):
        return image_stdio.run_piped(args, lambda files, reported: _run_files(files, segmenter, reported))
    return _run_files(args, segmenter)


def _run_files(args: argparse.Namespace, segmenter: Any = None, reported: Optional[Mapping[str, str]] = None) -> int:
    """Cut out ``args.inputs``, files, folders and globs; ``reported``: how the report names a temporary file
    standing for a standard stream (``-``)."""
    import contextlib

    from ..errors import NOTICE, ConfigError, SinkError, SourceError, option
    from ..job import InferenceSpec, MatteSpec, OutputSpec, check_path_given, refuse_standard_streams
    from ..colors import is_color
    from ..io.atomic import check_replaces_no_input, check_report_path, check_report_replaces_nothing
    from .image_report import ImageRun

    spec = model_spec(args)
    spec.validate()
    inference: InferenceSpec = inference_spec(args)
    inference.validate()
    kind = COMPOSITOR_KIND[args.output]
    for path, what in [(args.out, "output"), *((i, "input") for i in args.inputs)]:
        check_path_given(path, what)  # "" meant the current folder
    _refuse_named_pipes(args.inputs)
    refuse_standard_streams(args.inputs, args.out, save="", name="a file (-o cut.png), or -o - to write to standard output,")
    check_report_path(None if args.report == "-" else args.report)  # its folder, before any picture is cut out
    run_info = ImageRun()
    if kind == "composite" and args.background is None:  # before OutputSpec's check, which offers a video too
        raise ConfigError(f"{option('kind', 'composite')} needs {option('background')} (a colour or an image)")
    key_color, blur_sigma, foreground = only_for(args, "key_color"), only_for(args, "blur_sigma"), foreground_wanted(args)
    output = OutputSpec(args.out, kind=kind, background=args.background, key_color=key_color, blur_sigma=blur_sigma,  # type: ignore[arg-type]
                        overlay_color=only_for(args, "overlay_color"), overlay_opacity=only_for(args, "overlay_opacity"),  # type: ignore[arg-type]
                        foreground=foreground, matte=MatteSpec(**matte_options(args)), bit_depth=args.bit_depth)  # type: ignore[arg-type]  # fmt: skip
    output.validate()  # the same checks as process: a background exactly for composite, a real colour, ...
    _check_size_and_quality(args)
    refuse_missing_input(args.inputs)  # collect_inputs' first error, where it is a missing picture
    # torch, PyAV, OpenCV and Pillow (1.5-2.5 s): only now, so each mistake above (a background that is no colour or
    # file, --quality 0, a mistyped picture name) is one line at once
    import numpy as np
    import torch

    from ..compose.compositor import Compositor
    from ..io import heif
    from ..io.image_sink import DEEP_FORMATS, write_image
    from ..io.color_profile import srgb_colours
    from ..io.exif import marked_srgb
    from ..io.xmp import marked_srgb as srgb_xmp
    from ..io.square import pad_square
    from ..runtime.file_job import resolved_settings, segmenter_for
    from ..runtime.load_failure import loading_model
    from ..runtime.video_job import to_sink_layout
    from .progress import FrameProgress

    found = collect_inputs(args.inputs, args.out, recursive=args.recursive)
    inputs = [f.path for f in found]
    targets = plan_outputs(inputs, Path(args.out), args.overwrite, args.ext, transparent=kind == "alpha", skip_existing=args.skip_existing,
                           subs=[f.sub for f in found])  # fmt: skip
    check_report_replaces_nothing(args.report, "--report", [*inputs, args.background, *spec.local_files()], targets)  # a picture replaced by its report
    if kind == "composite" and not is_color(args.background):  # `-o out/ --background out/beach.jpg --overwrite` replaced the beach with a cut-out
        for target in targets:
            if not (args.skip_existing and target.is_file()):  # one kept as it is replaces nothing
                check_replaces_no_input(target, [args.background])
    kept = 0
    if args.skip_existing:
        todo = [(source, target) for source, target in zip(inputs, targets) if not target.is_file()]
        kept = len(inputs) - len(todo)
        run_info.kept = [str(target) for target in targets if target.is_file()]
        if not todo:
            _write_report(args, run_info.report(args.out, _options(args), spec, inference, None), [], reported)
            if not args.quiet:
                print(f"nothing to do: all {kept} pictures are in {args.out} already (--skip-existing)", file=sys.stderr)
            return 0
        inputs, targets = [source for source, _ in todo], [target for _, target in todo]
    shallow = sorted({t.suffix.lower() for t in targets} - DEEP_FORMATS)
    if args.bit_depth == 16 and shallow:  # asked for, and silently not given: say so, as process does
        log.warning("--bit-depth 16: %s pictures hold 8 bits a sample, so they are written at 8; write .png or .tif for 16",
                    " and ".join(shallow))  # fmt: skip
    lossy = {t.suffix.lower() for t in targets} & {".jpg", ".jpeg", ".webp"}
    if args.quality is not None and not lossy:  # asked for, and nothing it applies to: say so rather than ignore it
        log.warning("--quality %d: PNG and TIFF are lossless, so it changes nothing here; it is for .jpg and .webp", args.quality)
    with run_info.timed("read"):
        first = _read_single(inputs[0], args.max_size) if len(inputs) == 1 else None  # a bad lone input fails before the model loads
    with contextlib.ExitStack() as stack:
        backgrounds = stack.enter_context(_Backgrounds(args.background)) if kind == "composite" else None
        with run_info.timed("load"):
            with loading_model():  # torch's own error as it loads is one line, exit 2, not a traceback
                segmenter = segmenter if segmenter is not None else segmenter_for(spec, inference)
        # a bar on a terminal, else a line every 10 s (a CI log showed nothing for an hour of photos)
        progress = stack.enter_context(contextlib.closing(FrameProgress(quiet=args.quiet or len(inputs) < 2, unit="pictures")))
        progress.start(len(inputs))
        unreadable: list[Path] = []

        def cut_out(source: Path, target: Path) -> bool:
            """Read, cut out and write one picture (False: unreadable, skipped); its arrays die with the call,
            so a folder's peak memory is one picture's, not also the previous one's while the next is read."""
            try:
                with run_info.timed("read"):
                    # --max-size before the model: a 50 MP photo for a 2000 px shop picture is cut out at 2000
                    image, deep, own_alpha = first if first is not None else _read_checked(source, args.max_size)
                    if args.square:  # after shrinking: --max-size 2000 --square gives 2000 x 2000
                        image, deep, own_alpha = pad_square(image, deep, own_alpha)
                    icc, density, frames, exif, xmp = _header(source)
            except SourceError as exc:
                if len(inputs) == 1:
                    raise
                # why, as batch says it of each video it skips: the end line only names them, and an empty file (a copy
                # that failed) wants another fix than a web page saved as .jpg
                log.warning("skipped: %s", exc, extra=NOTICE)  # a notice: -q keeps to the one error line
                return False
            batch = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0)
            with run_info.segmenting(segmenter.engine):  # a first export of this size counts apart, as process's does
                alphas = segmenter.predict(batch, frame_size=False)  # at the inference size: the compositor brings it to the picture's
            bits = 16 if target.suffix.lower() in DEEP_FORMATS and (args.bit_depth == 16 or (args.bit_depth == "auto" and deep is not None)) else 8
            if args.srgb and icc is not None and kind != "mask":
                # before compositing, so a --key-color or --background colour is written as given, the sRGB output's own values
                # (composited in the photo's P3 and converted with it, #00b140 came out 0,182,36); the model saw the file's pixels
                with run_info.timed("compose"):
                    shown, deep, icc = srgb_colours(image, deep if bits > 8 else None, icc, source)
                if shown is not image:
                    batch = torch.from_numpy(shown).permute(2, 0, 1).unsqueeze(0)
                    exif = marked_srgb(exif) if exif is not None else exif  # its EXIF says so too
                    xmp = srgb_xmp(xmp) if xmp is not None else xmp  # and its XMP
            with run_info.timed("compose"):
                background = backgrounds.covering(image.shape[1], image.shape[0], alphas.device, deep=bits > 8, profile=icc) if backgrounds else None
                compositor = Compositor.for_output(output, background=background, bits=bits)
                colour = None if deep is None or bits == 8 else torch.from_numpy(deep).permute(2, 0, 1).unsqueeze(0).to(alphas.device).float().div_(65535.0)
                coverage = None
                if own_alpha is not None:  # 8 or 16 bits, as the file's
                    coverage = torch.from_numpy(own_alpha.astype(np.float32) / np.iinfo(own_alpha.dtype).max)[None, None].to(alphas.device)
                pixels = to_sink_layout(compositor(batch.to(alphas.device), alphas, colour, coverage).cpu().numpy())[0]
            if frames > 1 and heif.is_heif(source):  # not an animation: a burst's or an edit's pictures, one marked primary
                log.warning("%s holds %d images; its primary one is cut out", source, frames)
            elif frames > 1:  # a still is what `image` writes; the animation is `process`'s job
                if str(source) == getattr(args, "stdin_file", None):  # process reads no standard input: a file to save
                    log.warning("%s has %d frames; only the first is cut out (saved to a file, anim%s, "
                                "`birefvid process anim%s -o OUT` cuts out them all)", source, frames, source.suffix, source.suffix)  # fmt: skip
                else:
                    log.warning("%s has %d frames; only the first is cut out (`birefvid process %s -o OUT` cuts out them all)",
                                source, frames, source)  # fmt: skip
            with run_info.timed("write"):
                target.parent.mkdir(parents=True, exist_ok=True)  # a new output folder, with the first picture
                # without --overwrite a picture another run wrote meanwhile stops the run, as process does (--skip-existing:
                # the same command's other run made it, and replacing it loses nothing)
                write_image(target, pixels, icc=icc if kind != "mask" else None, density=density, exif=None if args.no_exif else exif,
                            overwrite=args.overwrite or args.skip_existing, quality=args.quality, xmp=None if args.no_exif else xmp)  # fmt: skip
            run_info.wrote(source, target, bits)
            return True

        for source, target in _counted(zip(inputs, targets), progress):
            if not cut_out(source, target):
                unreadable.append(source)  # one damaged photo does not stop the other hundred
    run_info.unreadable = [str(p) for p in unreadable]
    report = run_info.report(args.out, _options(args), spec, inference, resolved_settings(segmenter))
    if unreadable:
        names = ", ".join(str(p) for p in unreadable[:3]) + (f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else "")
        written = len(inputs) - len(unreadable)
        others = {0: "none was written", 1: f"the other one was written to {args.out}"}.get(written, f"the other {written} were written to {args.out}")
        failed = SourceError(f"{len(unreadable)} of {len(inputs)} images could not be read or used and were skipped: {names} ({others})")
        try:  # what was written and what was skipped, for the script that reruns the rest
            _write_report(args, {**report, "error": str(failed)}, run_info.written, reported)
        except SinkError as unwritten:  # the run's own error comes first: it says why
            log.warning("%s", unwritten)
        raise failed
    _write_report(args, report, run_info.written, reported)
    if not args.quiet:
        where = targets[0] if len(targets) == 1 else f"{len(targets)} pictures in {args.out}"
        from ..file_names import one_line

        print(f"wrote {one_line(str(where))}" + (f" ({kept} already there kept)" if kept else ""), file=sys.stderr)
    return 0


def _check_size_and_quality(args: argparse.Namespace) -> None:
    """``--max-size`` (8 px or more, as ``process`` takes it) and ``--quality`` (1-100), one line each, before any work."""
    from ..errors import ConfigError

    if args.max_size is not None and args.max_size < 8:
        raise ConfigError(f"--max-size must be a whole number of pixels, 8 or more, got {args.max_size}")
    if args.quality is not None and not 1 <= args.quality <= 100:
        raise ConfigError(f"--quality must be 1 to 100 (JPEG and WebP quality), got {args.quality}")


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The options of an ``image`` run as given, for its report (the model's are added from their specs)."""
    names = ("output", "background", "key_color", "blur_sigma", "overlay_color", "overlay_opacity", "no_foreground", "bit_depth", "ext", "recursive", "overwrite",
             "skip_existing", "max_size", "square", "quality", "srgb", "no_exif", "min_area", "threshold", "grow", "shrink", "feather", "invert", "upsample")  # fmt: skip
    return {"inputs": list(args.inputs), "out": args.out, **{name: getattr(args, name) for name in names}}


def _write_report(args: argparse.Namespace, report: dict[str, Any], written: list[str], reported: Optional[Mapping[str, str]] = None) -> None:
    """``--report`` (when given), saying that the pictures written are kept if the report cannot be written;
    ``reported``: paths named otherwise in it (a standard stream's temporary file as ``-``)."""
    from .report_file import kept_phrase, write_report

    write_report(args.report, _renamed(report, reported or {}), kept=kept_phrase(written, "picture", "pictures"))


def _renamed(value: Any, names: Mapping[str, str]) -> Any:
    """``value`` (a report's JSON tree) with each string that is a key of ``names`` replaced by its value."""
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, dict):
        return {key: _renamed(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_renamed(item, names) for item in value]
    return value


def _refuse_named_pipes(inputs: Sequence[str]) -> None:
    """ConfigError for a named pipe (``/dev/stdin``, ``mkfifo``) as an input: a picture file is opened more than
    once (its pixels, then its header), and the second open of a pipe waits for a writer; ``-`` reads it once."""
    import stat

    from ..errors import ConfigError

    for item in inputs:
        try:
            piped = item != "-" and stat.S_ISFIFO(os.stat(item).st_mode)
        except (OSError, ValueError):  # not there: said later, as 'not found'
            piped = False
        if piped:
            raise ConfigError(f"{item} is a pipe, and a picture file is opened more than once; name - to read a picture "
                              "piped in (cat photo.jpg | birefvid image - -o cut.png)")  # fmt: skip


def _counted(items: Any, progress: Any) -> Any:
    """``items``, counting each on ``progress`` once the loop is done with it (written or skipped)."""
    for item in items:
        yield item
        progress.advance(1)


def _read_checked(path: Path, max_side: Optional[int] = None) -> Any:
    """The picture at ``path`` as HxWx3 uint8 RGB, for a 16-bit file uint16 RGB (else None), and its own
    HxW alpha, uint8 or uint16 as the file's (None when opaque); refused with one line when unreadable or too small.
    ``max_side``: all three shrunk so the longer side is at most that (``--max-size``); a large JPEG is decoded
    at 1/2, 1/4 or 1/8 for it (``io.jpeg_draft``), not whole: a 96 MP photo cost 288 MB and its whole decode."""
    from ..io.base import check_picture_size
    from ..io.image_source import read_alpha, read_rgb_deep
    from ..io.jpeg_draft import jpeg_draft
    from ..io.scale import shrink_still

    draft = jpeg_draft(path, max_side) if max_side is not None else None
    image, deep = read_rgb_deep(path, draft.scale if draft else 1)
    whole = draft.whole_size(image.shape[1], image.shape[0]) if draft else None
    check_picture_size(*(whole or (image.shape[1], image.shape[0])), path)
    alpha = read_alpha(path, deep=deep is not None)  # a 16-bit file's alpha read at 16 bits
    alpha = alpha if alpha is not None and alpha.shape == image.shape[:2] else None
    if max_side is None:
        return image, deep, alpha
    return tuple(shrink_still(max_side, image, deep, alpha, whole=whole))


class _Header(NamedTuple):
    """What a picture's header says beyond its pixels, for its cut-out."""

    icc: Optional[bytes]  # its RGB colour profile (None if none, or one an RGB output cannot carry)
    density: Optional["PixelDensity"]  # DPI or non-square pixels, as shown (turned with an EXIF quarter turn)
    frames: int  # an animated GIF or WebP has several
    exif: Optional[bytes]  # camera, exposure and date, less the position and thumbnail (``io.exif``)
    xmp: Optional[bytes]  # keywords, caption, credit and copyright, less the position and thumbnails (``io.xmp``)


def _header(path: Path) -> _Header:
    """``path``'s header (``_Header``), read without decoding the pixels again."""
    from PIL import Image

    from ..io.dcf_profile import exif_hinted_profile
    from ..io.exif import cutout_exif
    from ..io.image_sink import PixelDensity, pixel_density, rgb_profile
    from ..io.image_source import opened_unlimited
    from ..io.xmp import cutout_xmp

    try:
        with opened_unlimited(path) as im:  # the header only: no second decode
            density = pixel_density(im.info)
            if density is not None and im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # shown turned a quarter
                density = PixelDensity(density.y, density.x, density.per_inch)
            icc = rgb_profile(im.info.get("icc_profile")) or exif_hinted_profile(im)  # a DSLR's Adobe RGB said in EXIF alone
            return _Header(icc, density, int(getattr(im, "n_frames", 1)), cutout_exif(im), cutout_xmp(im))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return _Header(None, None, 1, None, None)


def _read_single(path: Path, max_side: Optional[int] = None) -> Any:
    """A lone input, read up front (shrunk to ``max_side``: its whole size is not kept all run); a video gets
    pointed at ``birefvid process`` instead."""
    from ..errors import SourceError
    from ..extensions import VIDEO_EXTENSIONS

    try:
        return _read_checked(path, max_side)
    except SourceError:
        if path.suffix.lower() in VIDEO_EXTENSIONS - {".gif"}:  # a GIF is read as a picture: one that is not is damaged
            raise SourceError(f"{path} is a video, not a picture: cut videos with `birefvid process {path} -o OUT`") from None
        raise


class _Backgrounds:
    """``--background`` fitted to each picture's size. The last few sizes are kept (photos from one
    camera share theirs); older ones are closed, so a folder of many sizes holds a few pictures only. A picture
    file is decoded once, on opening, and kept (``_pictures``): each size made from it, not from the file again."""

    KEEP = 4

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._by_size: "OrderedDict[tuple[int, int, str, bool, Optional[bytes]], Any]" = OrderedDict()
        self._pictures: dict = {}  # the decoded picture, by depth (open_background's ``pictures``)

    def __enter__(self) -> "_Backgrounds":
        from ..compose.background import StreamBackground
        from ..errors import ConfigError

        opened = self.covering(8, 8, "cpu")  # opened once now: a missing or unreadable file fails before the model loads
        if isinstance(opened, StreamBackground):  # each photo would silently get the video's next frame
            self.__exit__()
            raise ConfigError(f"--background {self.spec} is a video; birefvid image takes a colour or a picture "
                              f"(one of its frames: ffmpeg -i {self.spec} -frames:v 1 background.png)")
        return self

    def __exit__(self, *exc: object) -> None:
        while self._by_size:
            self._by_size.popitem()[1].close()
        self._pictures.clear()

    def covering(self, width: int, height: int, device: Any, deep: bool = False, profile: Optional[bytes] = None) -> Any:
        """The background (a ``compose.Background``) scaled to cover ``width`` x ``height`` on ``device``
        (``deep``: as float, for a 16-bit output), in the photo's RGB colour ``profile`` (None: sRGB)."""
        from ..runtime.backgrounds import open_background

        key = (width, height, str(device), deep, profile)
        if key in self._by_size:
            self._by_size.move_to_end(key)
        else:
            self._by_size[key] = open_background(self.spec, (width, height), device, deep=deep, profile=profile,
                                                   pictures=self._pictures)
            if len(self._by_size) > self.KEEP:
                self._by_size.popitem(last=False)[1].close()
        return self._by_size[key]
