"""A request's query read as ``birefvid image``'s flags, so the server takes what the command line takes."""

from __future__ import annotations

from urllib.parse import parse_qsl

from .request_error import RequestError

# the query's output names: the image command's, and process's "alpha" for its "rgba"
OUTPUT_NAMES = {"rgba": "rgba", "alpha": "rgba", "mask": "mask", "foreground": "foreground", "green": "green", "composite": "composite", "blur": "blur",
                "overlay": "overlay"}  # fmt: skip
FORMATS = {"png": ".png", "webp": ".webp", "jpeg": ".jpg", "jpg": ".jpg", "tif": ".tif", "tiff": ".tif"}
CONTENT_TYPES = {".png": "image/png", ".webp": "image/webp", ".jpg": "image/jpeg", ".tif": "image/tiff"}
# query options passed on to the image command as --NAME=VALUE; switches as --NAME (value 1/true/yes, or empty)
VALUED = ("background", "key-color", "blur-sigma", "overlay-color", "overlay-opacity", "max-size", "quality", "min-area", "threshold", "grow", "shrink", "feather", "upsample", "bit-depth")
SWITCHES = ("square", "srgb", "no-exif", "no-foreground", "invert")
_TRUE, _FALSE = {"", "1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def image_argv(query: str) -> tuple[list[str], str]:
    """The ``birefvid image`` flags a query asks for, and the output's suffix (``format``, default .png);
    RequestError 400 for an unknown or repeated option, a bad switch value, or a background that is no colour."""
    from ..colors import is_color

    argv: list[str] = []
    suffix = ".png"
    seen: set[str] = set()
    for raw, value in parse_qsl(query, keep_blank_values=True):
        name = raw.replace("_", "-")
        if name in seen:
            raise RequestError(400, f"{name} given twice")
        seen.add(name)
        if name == "output":
            if value not in OUTPUT_NAMES:
                raise RequestError(400, f"output={value}: expected one of {', '.join(OUTPUT_NAMES)}")
            argv.append(f"--output={OUTPUT_NAMES[value]}")
        elif name == "format":
            if value.lower() not in FORMATS:
                raise RequestError(400, f"format={value}: expected one of {', '.join(FORMATS)}")
            suffix = FORMATS[value.lower()]
        elif name in VALUED:
            if name == "background" and not is_color(value):  # a path would read the server's own files
                raise RequestError(400, f"background={value}: expected a colour (#rrggbb, a name such as white, or r,g,b)")
            argv.append(f"--{name}={value}")
        elif name in SWITCHES:
            if value.lower() not in _TRUE | _FALSE:
                raise RequestError(400, f"{name}={value}: expected 1 or 0 (true or false)")
            if value.lower() in _TRUE:
                argv.append(f"--{name}")
        else:
            known = ", ".join(("output", "format", *VALUED, *SWITCHES))
            raise RequestError(400, f"unknown option {raw!r}; expected {known}")
    if suffix == ".jpg" and not any(a.startswith("--output=") and a != "--output=rgba" for a in argv):  # said in the query's words
        raise RequestError(400, "format=jpeg has no transparency: ask for format=png or webp, or an opaque output "
                                "(mask, foreground, green, composite, blur, overlay)")  # fmt: skip
    return argv, suffix
