"""A package's public names imported on first use (PEP 562), so that importing one light module of it loads no torch,
PyAV or OpenCV: ``birefvid.io`` and ``birefvid.models`` use it (a bad option is answered before 1.5-3 s of imports)."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_names(package: str, where: dict[str, str], namespace: dict[str, Any]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``, whose public names ``where`` maps to the
    submodule each comes from; ``namespace``: the package's ``globals()``, where a name is kept once imported."""

    def get(name: str) -> Any:
        """``name`` from its module, imported now; a submodule not imported yet is Python's to import."""
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        namespace[name] = value
        return value

    def listed() -> list[str]:
        """The names imported so far and the lazy ones: ``dir()``, ``help()`` and a notebook's completion list them
        all, as they did when the package imported them eagerly."""
        return sorted(set(namespace) | set(where))

    return get, listed
