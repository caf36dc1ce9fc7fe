"""The image layouts sinks accept per output kind, checked before any encoding work."""

from __future__ import annotations

import numpy as np

_CHANNELS = {"alpha": (4,), "rgb": (3,), "mask": (None, 1)}


def check_images(images: np.ndarray, kind: str, width: int, height: int, *, deep: bool = False) -> None:
    """Raise ValueError unless ``images`` is uint8 (N, H, W, C) with C fitting ``kind`` and the stream's size
    (``deep``: uint16 in [0, 65535] too, for sinks that write 10 bits or more)."""
    expected = {"alpha": "(N, H, W, 4) RGBA", "rgb": "(N, H, W, 3) RGB", "mask": "(N, H, W) or (N, H, W, 1)"}[kind]
    dtypes = (np.uint8, np.uint16) if deep else (np.uint8,)
    if not isinstance(images, np.ndarray) or images.dtype not in dtypes:
        got = f"{type(images).__name__} {getattr(images, 'dtype', '')}"
        raise ValueError(f"{kind} sink needs {' or '.join(np.dtype(d).name for d in dtypes)} numpy images {expected}, got {got}")
    channels = None if images.ndim == 3 else (images.shape[3] if images.ndim == 4 else -1)
    if channels not in _CHANNELS[kind] or images.ndim not in (3, 4) or (images.ndim == 3 and kind != "mask"):
        raise ValueError(f"{kind} sink needs images shaped {expected}, got {images.shape}")
    if images.shape[1:3] != (height, width):
        raise ValueError(
            f"{kind} sink was opened for {width}x{height} but got images of {images.shape[2]}x{images.shape[1]}"
        )
