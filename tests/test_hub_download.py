"""Model downloads end to end: the real huggingface_hub against a local Hugging Face mirror (``hub_mirror.HubMirror``,
as a user with ``HF_ENDPOINT`` set to one), through a first run, a flaky link, a mirror in trouble, Ctrl-C and the
offline run after. No test reaches the network."""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from hub_mirror import HubMirror


ASSET = Path(__file__).resolve().parents[1] / "birefvid" / "assets" / "tiny.safetensors"
REPO = "someone/birefnet-b0"  # any repo with a model.safetensors (`--model owner/repo`); the file is tiny's pvt_v2_b0
LITE = ("ZhengPeng7/BiRefNet_lite", "model.safetensors")  # a published variant's (`--model lite`), for the failures


@pytest.fixture(scope="module")
def weights_bytes() -> bytes:
    return ASSET.read_bytes()


@pytest.fixture()
def picture(tmp_path) -> Path:
    import cv2
    import numpy as np

    path = tmp_path / "in.png"
    image = np.full((64, 64, 3), 40, np.uint8)
    image[16:48, 16:48] = (30, 30, 200)
    cv2.imwrite(str(path), image)
    return path


def _env(tmp_path: Path, mirror: HubMirror, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"))}
    return {**env, "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": mirror.url, "NO_PROXY": "127.0.0.1,localhost", **extra}


def _image(tmp_path: Path, picture: Path, mirror: HubMirror, *flags: str, model: str = REPO, **env: str) -> subprocess.CompletedProcess:
    out = tmp_path / "out.png"
    out.unlink(missing_ok=True)
    args = [sys.executable, "-m", "birefvid", *flags, "image", str(picture), "-o", str(out), "--model", model, "--resolution", "64"]
    return subprocess.run(args, capture_output=True, text=True, env=_env(tmp_path, mirror, **env), cwd=tmp_path, timeout=120)


def _in_terminal(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run ``args`` with a 100-column terminal as its standard streams: (exit status, what it showed)."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.chdir(cwd)
        os.execvpe(args[0], args, env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    shown = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            data = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        shown += data
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace").replace("\r", "\n")


def _cache_files(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "hf" / "hub").rglob("*") if p.is_file() and "blobs" in p.parts]


def test_a_connection_dropped_mid_file_resumes_from_where_it_broke_off(tmp_path, picture, weights_bytes):
    with HubMirror({(REPO, "model.safetensors"): weights_bytes}) as mirror:
        mirror.drop_after, mirror.drops = len(weights_bytes) // 2, 1
        result = _image(tmp_path, picture, mirror)
    assert result.returncode == 0, result.stderr
    ranges = [r[2] for r in mirror.gets()]
    assert ranges[0] is None and ranges[1] and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-", mirror.requests
    assert "Traceback" not in result.stderr


def test_ctrl_c_in_a_download_leaves_nothing_a_rerun_trusts(tmp_path, picture, weights_bytes):
    with HubMirror({(REPO, "model.safetensors"): weights_bytes}) as mirror:
        mirror.rate = 2e6  # 15 s for the file: Ctrl-C comes well before its end
        args = [sys.executable, "-m", "birefvid", "image", str(picture), "-o", str(tmp_path / "out.png"), "--model", REPO, "--resolution", "64"]
        run = subprocess.Popen(args, env=_env(tmp_path, mirror), cwd=tmp_path, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not mirror.gets() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=60)
        assert run.returncode == 130, stderr
        assert not _cache_files(tmp_path), _cache_files(tmp_path)  # no blob, no .incomplete
        mirror.rate = None
        again = _image(tmp_path, picture, mirror)
    assert again.returncode == 0, again.stderr
    assert len(mirror.gets()) == 2  # downloaded again, whole


@pytest.fixture()
@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ({"status": 500}, "answered 500 Internal Server Error (the server's trouble: run the command again later)"),
        ({"status": 429}, "answered 429 Too Many Requests (too many requests: wait a while"),
        ({"html": True}, "did not answer as a Hugging Face hub does (no X-Repo-Commit or ETag header: a web page"),
        ({"html": "blobs"}, "sent a file of the wrong size (105 bytes where it announced 1000: a web page"),
    ],
    ids=["500", "429", "html-page", "html-instead-of-the-file"],
)
def test_a_cut_short_file_in_the_cache_names_the_download_to_redo(tmp_path, picture, weights_bytes):
    """A blob cut short after it was cached (a full disk, a copy): one line, not safetensors' traceback."""
    with HubMirror({(REPO, "model.safetensors"): weights_bytes}) as mirror:
        assert _image(tmp_path, picture, mirror).returncode == 0
    (blob,) = _cache_files(tmp_path)
    with blob.open("r+b") as f:
        f.truncate(len(weights_bytes) // 3)
    result = _image(tmp_path, picture, mirror, HF_HUB_OFFLINE="1")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "cut short" in line and f"hf download {REPO} model.safetensors --force-download" in line
