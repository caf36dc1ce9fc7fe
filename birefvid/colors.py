"""Parse user colour strings ("#00ff00", "00ff00", "green", "0,255,0") into RGB tuples."""

from __future__ import annotations

import re
from typing import Sequence, Union

from .errors import ConfigError

NAMED_COLORS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0), "white": (255, 255, 255), "red": (255, 0, 0), "green": (0, 255, 0),
    "blue": (0, 0, 255), "yellow": (255, 255, 0), "cyan": (0, 255, 255), "magenta": (255, 0, 255),
    "gray": (128, 128, 128), "grey": (128, 128, 128), "orange": (255, 165, 0), "purple": (128, 0, 128),
}  # fmt: skip

_HEX = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")
_TRIPLE = re.compile(r"\(?\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\)?")


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
    if match:
        digits = match.group(1)
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
    match = _TRIPLE.fullmatch(text)
    if match:
        values = tuple(int(v) for v in match.groups())
        if all(0 <= v <= 255 for v in values):
            return values  # type: ignore[return-value]
    raise _bad(spec)


def is_color(spec: str) -> bool:
    """True when ``spec`` parses as a colour (used to tell colours from file paths)."""
    try:
        parse_color(spec)
    except ConfigError:
        return False
    return True
