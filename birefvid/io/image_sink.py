"""Write a PNG sequence (RGBA for alpha, L for mask, RGB for rgb) into a folder that appears atomically."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from birefvid.errors import SinkError
from birefvid.io.atomic import AtomicDir, AtomicFile
from birefvid.io.base import Sink
from birefvid.io.layout import check_images

log = logging.getLogger(__name__)

NAME_PATTERN = "frame_{:06d}.png"  # 1-based, in write order
_TO_BGR = {"alpha": cv2.COLOR_RGBA2BGRA, "rgb": cv2.COLOR_RGB2BGR}


class ImageSequenceSink(Sink):
    """PNG files ``frame_000001.png``... in a temporary folder renamed onto ``path`` on ``close()``."""

    def __init__(self, path: Path, kind: str, width: int, height: int, *, compression: int = 3) -> None:
        super().__init__()
        self.path = Path(path)
        self.kind = kind
        self.width, self.height = width, height
        self._params = [cv2.IMWRITE_PNG_COMPRESSION, int(compression)]
        self._count = 0
        self._dir = AtomicDir(self.path)

    def _validate(self, images: np.ndarray) -> None:
        check_images(images, self.kind, self.width, self.height)

    def _write(self, images: np.ndarray, pts: Sequence[Optional[int]]) -> None:
        for image in images:
            if self.kind == "mask":
                image = image[..., 0] if image.ndim == 3 else image
            else:
                image = cv2.cvtColor(image, _TO_BGR[self.kind])
            self._count += 1
            target = self._dir.temp / NAME_PATTERN.format(self._count)
            try:
                ok = cv2.imwrite(str(target), image, self._params)
            except cv2.error as e:
                raise SinkError(f"cannot write {target}: {e}") from e
            if not ok:
                raise SinkError(f"cannot write {target} (disk full or folder removed?)")

    def _close(self) -> None:
        if self._count == 0:
            log.warning("no frames were written to %s", self.path)
        self._dir.commit()
        log.info("wrote %d PNG files to %s", self._count, self.path)

    def _abort(self) -> None:
        self._dir.discard()


def write_png(path: Path, pixels: np.ndarray) -> None:
    """One PNG, RGBA (H, W, 4) or gray (H, W), written atomically: a temp file beside ``path``, renamed when complete."""
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    atomic = AtomicFile(path)
    try:
        ok, data = cv2.imencode(".png", pixels)
        if not ok:
            raise SinkError(f"could not encode {path} as PNG")
        atomic.temp.write_bytes(data.tobytes())
        atomic.commit()
    finally:
        atomic.discard()
