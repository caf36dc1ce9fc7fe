"""``CutoutService``: the loaded model, cutting out one picture at a time with the image command's code, a few waiting."""

from __future__ import annotations

import argparse
import contextlib
import logging
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

from ..errors import BirefvidError, cli_naming
from .limits import MAX_PIXELS, QUEUE, RETRY_AFTER_S
from .picture_type import picture_suffix
from .query import CONTENT_TYPES, image_argv
from .request_error import RequestError

log = logging.getLogger(__name__)


def _out_of_memory(error: BaseException) -> bool:
    """The model out of memory (``DeviceOutOfMemory``), imported here: by then torch is, and ``serve --help`` imports none."""
    from ..runtime.segmenter import DeviceOutOfMemory

    return isinstance(error, DeviceOutOfMemory)

# the model options `serve` takes once for every request (add_model_options' fields)
MODEL_FIELDS = ("model", "weights", "backbone", "resolution", "keep_aspect", "device", "precision", "backend")


class _OptionParser(argparse.ArgumentParser):
    """The image command's parser, refusing with a RequestError instead of exiting the server."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise RequestError(400, message)


class CutoutService:
    """The loaded model and the image command's parser; cuts out one picture at a time, ``queue`` more waiting."""

    def __init__(self, args: argparse.Namespace, segmenter: Any, queue: int = QUEUE, max_pixels: int = MAX_PIXELS) -> None:
        from ..commands import image

        self.segmenter = segmenter
        self.queue = queue
        self.max_pixels = max_pixels
        self._model_args = {name: getattr(args, name) for name in MODEL_FIELDS}
        self._parser = _OptionParser(prog="birefvid image", add_help=False)
        image.register(self._parser)
        self._run = image.run
        self._infer = threading.Lock()
        self._count = threading.Lock()
        self.admitted = 0  # running and waiting

    @contextlib.contextmanager
    def admitted_slot(self) -> Iterator[None]:
        """One place among the running and waiting requests; RequestError 503 (with Retry-After) when all are taken."""
        with self._count:
            if self.admitted >= 1 + self.queue:
                raise RequestError(503, f"busy: one picture is being cut out and {self.queue} are waiting; retry shortly",
                                   {"Retry-After": str(RETRY_AFTER_S)})  # fmt: skip
            self.admitted += 1
        try:
            yield
        finally:
            with self._count:
                self.admitted -= 1

    def cut_out(self, body: bytes, query: str) -> tuple[bytes, str]:
        """The cut-out of the picture in ``body`` as ``birefvid image`` writes it with the query's options, and its
        Content-Type; RequestError for a bad request, with the image command's own one-line reason."""
        options, suffix = image_argv(query)
        if not body:
            raise RequestError(400, "empty body: POST the picture (curl --data-binary @photo.jpg, or -F file=@photo.jpg)")
        source_suffix = picture_suffix(body, self.max_pixels)
        with tempfile.TemporaryDirectory(prefix="birefvid-serve-") as folder:
            source, target = Path(folder) / f"picture{source_suffix}", Path(folder) / f"cutout{suffix}"
            source.write_bytes(body)
            args = self._parser.parse_args([str(source), "-o", str(target), "-q", *options])
            for name, value in self._model_args.items():
                setattr(args, name, value)
            try:
                with self._infer, cli_naming():  # one model, one picture at a time; errors name the flags, as the CLI's do
                    self._run(args, segmenter=self.segmenter)
            except BirefvidError as e:
                text = str(e).replace(str(source), "the picture").replace(str(target), "the cut-out")
                if _out_of_memory(e):  # the server's state, not the request's fault: 503, as when busy, for a client to retry
                    log.warning("a request found the model out of memory: %s", text)
                    raise RequestError(503, text, {"Retry-After": str(RETRY_AFTER_S)}) from None
                raise RequestError(400, text) from None
            return target.read_bytes(), CONTENT_TYPES[suffix]

    def health(self) -> dict[str, Any]:
        """What ``GET /health`` answers: ready, the model, and how many requests are in (their bodies read)."""
        seg = self.segmenter
        return {"status": "ready", "model": seg.name, "backend": seg.backend, "device": str(seg.device),
                "busy": self.admitted, "queue": self.queue}  # fmt: skip
