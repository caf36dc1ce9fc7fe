"""VFX plate formats birefvid does not read (OpenEXR, DPX, Cineon): one error line naming them and the ffmpeg
command that converts them to 16-bit PNGs it reads, numbers kept, instead of "no images found".

EXR is scene-linear light, which the model was not trained on and a PNG or ProRes output cannot say it holds;
DPX and Cineon are often log. Converting is a colour decision the compositor makes (or ffmpeg's sRGB curve)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional, Sequence

from birefvid.sequence_names import numbered_name

PLATE_EXTENSIONS = {".exr": "EXR", ".dpx": "DPX", ".cin": "Cineon"}


def unread_plate_reason(paths: list[Path], where: str, beside: Sequence[Path] = ()) -> Optional[str]:
    """Why ``paths`` (a folder's files, or a glob's) give no pictures, or only the few ``beside`` them (a preview), when
    they are EXR/DPX/Cineon frames; else None."""
    plates = sorted(p for p in paths if p.suffix.lower() in PLATE_EXTENSIONS and p.is_file())
    if not plates:
        return None
    frames = _sequence_of(plates)
    first = frames[0]
    kind = PLATE_EXTENSIONS[first.suffix.lower()]
    others = f", and only {', '.join(p.name for p in beside[:2])}{', ...' if len(beside) > 2 else ''} beside them" if beside else ""
    return (f"{where} holds {kind} frames ({first.name}{', ...' if len(plates) > 1 else ''}), which birefvid does not read{others}; "
            f"convert them to 16-bit PNGs first, numbers kept: {_ffmpeg_command(frames, kind)}")  # fmt: skip


def _sequence_of(plates: list[Path]) -> list[Path]:
    """The frames of the first file's sequence, by number: as text, a Houdini ``$F`` render's ``f_10.exr`` came before
    ``f_8.exr``, and ffmpeg was told to start at 10."""
    parts = numbered_name(plates[0].name)
    if parts is None:
        return plates
    numbered = [(n, p) for p in plates if (n := numbered_name(p.name)) is not None and n.key == parts.key]
    return [p for _, p in sorted(numbered, key=lambda np_: np_[0].number)]


def _ffmpeg_command(frames: list[Path], kind: str) -> str:
    """The ffmpeg line that writes ``frames``' sequence as 16-bit PNGs in a ``png16`` folder beside it."""
    first = frames[0]
    match = numbered_name(first.name)
    if match:
        prefix, digits, suffix = match
        widths = {len(n.digits) for n in map(numbered_name, (p.name for p in frames)) if n is not None}
        padded = digits.startswith("0") or (len(digits) > 1 and widths == {len(digits)})  # 8, 9, 10 is no %02d
        field = f"%0{len(digits)}d" if padded else "%d"
        number = f"-start_number {int(digits)} "
        source, target = first.parent / f"{prefix}{field}{suffix}", f"{prefix}{field}.png"
    else:
        number, source, target = "", first, f"{first.stem}.png"
    trc = "-apply_trc iec61966_2_1 " if kind == "EXR" else ""  # linear light to sRGB, as a viewer shows it
    out = first.parent.parent / "png16" / target
    q = shlex.quote
    return f"mkdir -p {q(str(out.parent))} && ffmpeg {trc}{number}-i {q(str(source))} {number}-pix_fmt rgb48be {q(str(out))}"
