"""Real outside components the live tests use (ffmpeg, GStreamer's RTSP server, Chromium, Xvfb, extras).

A missing one skips the test with the reason and the package to install, except under ``CI=true``,
where it fails: ``.ci/run`` installs all of them, so a skip there would hide a test that never ran.
Import from any test: ``from system_tools import need_binary, need_module``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
from typing import Iterator

import pytest


def _missing(what: str, how: str) -> None:
    message = f"{what} is not available ({how})"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message + "; .ci/run installs it, so under CI this is a failure")
    pytest.skip(message)


def need_binary(name: str, debian_package: str) -> str:
    """Path of executable ``name``; skip (fail under CI) naming the Debian package when it is absent."""
    path = shutil.which(name)
    if path is None:
        _missing(name, f"apt-get install {debian_package}")
    return path  # type: ignore[return-value]


def need_file(path: str, debian_package: str) -> str:
    """``path`` once it exists (e.g. a server's plug-in); skip (fail under CI) naming the Debian package otherwise."""
    if not os.path.exists(path):
        _missing(path, f"apt-get install {debian_package}")
    return path


def need_module(module: str, pip_name: str) -> None:
    """Skip (fail under CI) when the Python module ``module`` is not importable in this environment."""
    if importlib.util.find_spec(module) is None:
        _missing(f"Python module {module}", f"pip install {pip_name}")


def need_system_python_module(module: str, debian_packages: str) -> str:
    """The distribution's /usr/bin/python3, once it can import ``module`` (e.g. gi's GstRtspServer)."""
    python = need_binary("/usr/bin/python3", "python3")
    probe = subprocess.run([python, "-c", module], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        _missing(f"/usr/bin/python3 with {module!r}", f"apt-get install {debian_packages}")
    return python


def has_ipv6_loopback() -> bool:
    """Whether this machine has ``::1`` to listen on (a container may have IPv6 off): the ::1 cases skip without it."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@contextlib.contextmanager
def own_temp_dir(prefix: str) -> Iterator[dict[str, str]]:
    """An environment whose ``TMPDIR`` is a fresh folder, removed afterwards: Chromium leaves its singleton socket's
    folder (``org.chromium.Chromium.*``) in ``TMPDIR`` after every run, and a test run left dozens in /tmp. Short, in
    the system's temporary folder, as the socket's path must fit 107 bytes (a test's ``tmp_path`` can be longer)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        yield {**os.environ, "TMPDIR": folder}
