"""Parse user colour strings ("#00ff00", "00ff00", "green", "0,255,0") into RGB tuples.

An opaque fourth (alpha) value is taken too ("255,255,255,255", "#ffffffff"), as rembg's ``-bgc R G B A`` and
CSS's ``#rrggbbaa`` write a colour; a see-through one is refused with the output that gives transparency."""

from __future__ import annotations

import re
from typing import Sequence, Union

from .errors import ConfigError

NAMED_COLORS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0), "white": (255, 255, 255), "red": (255, 0, 0), "green": (0, 255, 0),
    "blue": (0, 0, 255), "yellow": (255, 255, 0), "cyan": (0, 255, 255), "magenta": (255, 0, 255),
    "gray": (128, 128, 128), "grey": (128, 128, 128), "orange": (255, 165, 0), "purple": (128, 0, 128),
}  # fmt: skip

_HEX = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})([0-9a-fA-F]{2})?")
_SEP = r"(?:\s*,\s*|\s+)"  # commas, or spaces as rembg's -bgc 255 255 255 255 is typed (quoted: one argument)
_TRIPLE = re.compile(rf"\(?\s*(\d{{1,3}}){_SEP}(\d{{1,3}}){_SEP}(\d{{1,3}})(?:{_SEP}(\d{{1,3}}))?\s*\)?")


def _bad(spec: object) -> ConfigError:
    names = ", ".join(sorted(NAMED_COLORS))
    return ConfigError(
        f"not a colour: {spec!r}; expected '#rrggbb', 'rrggbb', '#rgb', 'r,g,b' with 0-255 values, "
        f"or a name ({names})"
    )


def parse_color(spec: Union[str, Sequence[int]]) -> tuple[int, int, int]:
    """Turn a colour string (hex, 'r,g,b' or a name) or an RGB triple into (r, g, b) ints in 0-255."""
    if not isinstance(spec, str):
        try:
            values = tuple(int(v) for v in spec)
        except (TypeError, ValueError):
            raise _bad(spec) from None
        if len(values) != 3 or any(not 0 <= v <= 255 for v in values) or any(v != s for v, s in zip(values, spec)):
            raise _bad(spec)
        return values  # type: ignore[return-value]
    text = spec.strip().lower()
    if text in NAMED_COLORS:
        return NAMED_COLORS[text]
    match = _HEX.fullmatch(text)
    if match and not (match.group(2) and len(match.group(1)) == 3):
        digits = match.group(1)
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        _opaque(spec, int(match.group(2) or "ff", 16))
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    match = _TRIPLE.fullmatch(text)
    if match:
        values = tuple(int(v) for v in match.groups(default="255"))
        if all(0 <= v <= 255 for v in values):
            _opaque(spec, values[3])
            return values[:3]  # type: ignore[return-value]
    raise _bad(spec)


def _opaque(spec: str, alpha: int) -> None:
    """Refuse a colour that is not fully opaque: a background or key colour covers the picture."""
    if alpha != 255:
        raise ConfigError(f"colour {spec!r} has alpha {alpha}: a background or key colour is opaque (alpha 255 or ff); "
                          "for a see-through background write the cut-out with its alpha (process --output alpha, image --output rgba)")  # fmt: skip


def is_color(spec: str) -> bool:
    """True when ``spec`` is written as a colour (used to tell colours from file paths); a see-through one is too,
    so that it is refused as a colour rather than looked for as a file."""
    try:
        parse_color(spec)
    except ConfigError as e:
        return "has alpha" in str(e)
    return True
