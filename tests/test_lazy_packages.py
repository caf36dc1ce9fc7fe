"""`birefvid.io` and `birefvid.models` import their public names on first use (PEP 562): what that must not change."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.usefixtures("one_cpu_thread")  # speed: conftest says why

# in a fresh interpreter: this one has imported the names long ago, so they are in the packages' globals already
_DIR = """
import json, sys
import birefvid.io, birefvid.models
print(json.dumps({"io": dir(birefvid.io), "models": dir(birefvid.models), "torch": "torch" in sys.modules}))
"""


def test_dir_of_a_lazy_package_lists_its_public_names_without_importing_them():
    """`dir(birefvid.io)` (and so `help()` and a notebook's tab completion) listed `open_source`, `VideoFileSource`,
    ... when the package imported them eagerly; with the lazy `__getattr__` alone it listed none of them."""
    import birefvid.io
    import birefvid.models

    result = subprocess.run([sys.executable, "-c", _DIR], capture_output=True, text=True, timeout=120, check=True)
    listed = json.loads(result.stdout)
    assert set(birefvid.io.__all__) <= set(listed["io"]), sorted(set(birefvid.io.__all__) - set(listed["io"]))
    assert set(birefvid.models.__all__) <= set(listed["models"]), sorted(set(birefvid.models.__all__) - set(listed["models"]))
    assert listed["torch"] is False  # listing imports nothing


def test_the_moved_functions_old_import_paths_give_the_same_objects():
    """`parse_time`, `check_report_path` and the weights' name handling moved to light modules; code that imports them
    from their old homes gets the very same objects (so a monkeypatch of either home patches one function's callers:
    the callers are named in docs/architecture.md)."""
    from birefvid.io import atomic, times, trim
    from birefvid.models import names, weights
    from birefvid.runtime import file_job

    assert trim.parse_time is times.parse_time
    assert file_job.check_report_path is atomic.check_report_path
    for name in ("FOLDER_WEIGHTS", "HUB_REPO", "WEIGHTS_FILE_SUFFIXES", "card_for_repo", "download_target", "local_checkpoint", "weights_in_folder"):
        assert getattr(weights, name) is getattr(names, name), name


@pytest.mark.parametrize("package", ["birefvid.io", "birefvid.models"])
def test_type_checkers_see_a_lazy_packages_names_as_what_they_are(package):
    """A name that comes through a module's ``__getattr__`` is Any to type checkers: ``from birefvid.io import
    open_source`` and ``from birefvid.models import BiRefNet`` (both in the docs) went unchecked in users' code once
    the packages imported lazily, though birefvid ships py.typed. Each lazy name is imported under ``TYPE_CHECKING``
    from where ``__getattr__`` loads it (as ``birefvid/__init__.py`` does, tests/test_packaging.py)."""
    import ast
    import importlib
    import importlib.util
    import inspect

    module = importlib.import_module(package)
    seen = {}
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                if isinstance(imp, ast.ImportFrom):
                    source = importlib.util.resolve_name("." * imp.level + (imp.module or ""), package)
                    seen.update({a.asname or a.name: source for a in imp.names})
    for name, where in module._WHERE.items():
        assert name in seen, f"{package}.{name} is Any to type checkers"
        assert seen[name] == f"{package}.{where}", (name, seen[name])
    assert set(module.__all__) == set(module._WHERE)
