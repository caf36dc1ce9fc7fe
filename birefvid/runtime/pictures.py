"""Pictures as a notebook holds them (PIL images, OpenCV BGR arrays, float arrays, tensors, file paths)
turned into the uint8 H×W×3 RGB the Segmenter runs on, or refused with one line that says what to do.

Each form is checked rather than guessed at: a channel-first array, a float picture in 0-255 or an
int64 array would otherwise come back as a plausible-looking but wrong mask.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from ..errors import ConfigError  # a ValueError too: a web service's except BirefvidError answers a bad upload as one

# PIL modes whose samples are not 0-255: convert("RGB") clips them, which would give a wrong mask silently
_DEEP_PIL_MODES = ("I", "F", "I;16", "I;16L", "I;16B", "I;16N")

Picture = Union[np.ndarray, torch.Tensor, "os.PathLike[str]", str, Any]  # Any: a PIL.Image.Image (PIL is imported lazily)


def is_picture(value: object) -> bool:
    """Whether ``value`` is one picture (an array of at most 3 dimensions, a tensor of at most 3, a PIL image, a path), not a batch."""
    if isinstance(value, (str, os.PathLike)) or _is_pil(value):
        return True
    return isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim <= 3


def as_rgb(picture: Picture, *, bgr: bool = False, name: str = "picture") -> tuple[np.ndarray, Optional[np.ndarray]]:
    """One picture -> (H×W×3 uint8 RGB, its own H×W uint8 alpha or None), or ConfigError (a ValueError) naming ``name``.

    Arrays are H×W (grey), H×W×3 (RGB; BGR with ``bgr=True``, as OpenCV reads) or H×W×4 (RGBA /
    BGRA), uint8, uint16 (16-bit PNGs) or float in [0, 1]; tensors are (3, H, W) as torchvision
    lays them out; a path is read as ``birefvid image`` reads it (upright, 16-bit scaled down).
    """
    if isinstance(picture, (str, os.PathLike)):
        return _read(Path(picture), bgr)
    if _is_pil(picture):
        return _from_pil(picture, bgr, name)
    if isinstance(picture, torch.Tensor):
        if picture.ndim != 3 or picture.shape[0] not in (1, 3, 4):
            hint = ", e.g. tensor.permute(2, 0, 1)" if picture.ndim == 3 and picture.shape[2] in (1, 3, 4) else ""
            raise ConfigError(f"{name}: a tensor picture must be channel-first (C, H, W), got shape {tuple(picture.shape)}{hint}")
        picture = picture.detach().cpu().permute(1, 2, 0).numpy()  # torchvision's channel-first layout
    if not isinstance(picture, np.ndarray):
        raise ConfigError(f"{name}: expected a numpy array, a PIL image, a torch tensor or a file path, got {type(picture).__name__}")
    return _from_array(picture, bgr, name)


def _is_pil(value: object) -> bool:
    image_module = sys.modules.get("PIL.Image")  # no PIL import for callers that never pass one
    return image_module is not None and isinstance(value, image_module.Image)


def _read(path: Path, bgr: bool) -> tuple[np.ndarray, Optional[np.ndarray]]:
    from ..errors import SourceError, input_not_found
    from ..extensions import VIDEO_EXTENSIONS
    from ..io.image_source import read_alpha, read_rgb

    if bgr:
        raise ConfigError(f"{path}: bgr=True is for arrays; a file is read in its own channel order")
    if not path.is_file():
        raise SourceError(input_not_found(path))
    try:
        return read_rgb(path), read_alpha(path)
    except SourceError:
        if path.suffix.lower() in VIDEO_EXTENSIONS - {".gif"}:  # a GIF is read as a picture (its first frame): one that is not is damaged
            raise SourceError(f"{path} is a video, not a picture: iterate its frames and masks with birefvid.api.iter_masks") from None
        raise


def _from_pil(image: Any, bgr: bool, name: str) -> tuple[np.ndarray, Optional[np.ndarray]]:
    if bgr:
        raise ConfigError(f"{name}: bgr=True is for arrays; a PIL image is always RGB")
    if image.mode in _DEEP_PIL_MODES:
        raise ConfigError(f"{name}: PIL mode {image.mode!r} holds values beyond 0-255; pass np.asarray(image) "
                         "(uint16 is scaled down) or a float array in [0, 1]")  # fmt: skip
    _check_not_empty(image.height, image.width, name)
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"))
        return np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
    return np.array(image.convert("RGB")), None  # a copy: np.asarray of a PIL image is read-only, which torch warns about


def _check_not_empty(height: int, width: int, name: str) -> None:
    """ConfigError for a picture with no pixels (a crop box of zero area): torch's resize said only "sizes should be greater than 0"."""
    if not height or not width:
        raise ConfigError(f"{name}: the picture is empty ({width}x{height} pixels)")


def _from_array(a: np.ndarray, bgr: bool, name: str) -> tuple[np.ndarray, Optional[np.ndarray]]:
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[2] not in (1, 3, 4):
        raise ConfigError(f"{name}: shape {a.shape} is channel-first; pass H×W×C, e.g. array.transpose(1, 2, 0)")
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise ConfigError(f"{name}: expected an H×W, H×W×3 or H×W×4 array, got shape {a.shape}")
    _check_not_empty(a.shape[0], a.shape[1], name)
    a = _to_uint8(a, name)
    if a.ndim == 2 or a.shape[2] == 1:  # grey: the model takes three equal channels, as PIL's convert("RGB") gives
        grey = a.reshape(a.shape[0], a.shape[1], 1)
        return np.ascontiguousarray(np.broadcast_to(grey, (*grey.shape[:2], 3))), None
    rgb = a[..., 2::-1] if bgr else a[..., :3]
    alpha = np.ascontiguousarray(a[..., 3]) if a.shape[2] == 4 else None
    return np.ascontiguousarray(rgb), alpha


def _to_uint8(a: np.ndarray, name: str) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:  # 16-bit PNG/TIFF as OpenCV reads them (IMREAD_UNCHANGED)
        return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        if a.size and not (np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0):
            span = f"{np.nanmin(a):g}..{np.nanmax(a):g}" if np.isfinite(a).any() else "no finite values"
            raise ConfigError(f"{name}: a float picture must be in [0, 1], this one spans {span}; "
                             "divide 0-255 values by 255, or pass uint8")  # fmt: skip
        return np.rint(a * 255.0).astype(np.uint8)
    raise ConfigError(f"{name}: expected uint8, uint16 or float pixels, got {a.dtype}; e.g. array.astype(np.uint8) for 0-255 values")
