"""``RequestError``: how every part of the server refuses a request, with the status and line the client gets."""

from __future__ import annotations

from typing import Optional


class RequestError(Exception):
    """A request refused: its HTTP status and a one-line reason (``headers``: e.g. Retry-After)."""

    def __init__(self, status: int, message: str, headers: Optional[dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}
