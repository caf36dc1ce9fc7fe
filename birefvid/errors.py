"""The birefvid error hierarchy.

Every error a user can cause is a ``BirefvidError``. Each class also subclasses the matching
Python built-in (``OSError``, ``ValueError``, ...) so callers that already catch those keep
working. Messages say what was wrong, what was expected and how to fix it; the CLI prints
them as one line and exits with code 2.
"""

from __future__ import annotations


class BirefvidError(Exception):
    """Base class of every error birefvid raises on purpose."""


class ConfigError(BirefvidError, ValueError):
    """An option, flag or config file has an invalid value."""


class SourceError(BirefvidError, OSError):
    """An input (file, folder, camera, stream) is missing, unreadable or not media."""


class SinkError(BirefvidError, OSError):
    """An output cannot be written (unwritable folder, unsupported codec, exists already)."""


class WeightsError(BirefvidError, ValueError):
    """A checkpoint is missing, not a checkpoint, or does not fit the chosen backbone."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """A checkpoint file does not exist."""


class OfflineError(WeightsError, ConnectionError):
    """Weights must be downloaded but the hub cannot be reached and nothing is cached."""


class DataError(BirefvidError, ValueError):
    """Training or evaluation data is malformed (missing masks, mismatched sizes, ...)."""


class PipelineError(BirefvidError, RuntimeError):
    """A pipeline stage failed; ``stage`` names it and ``__cause__`` holds the original error."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage
