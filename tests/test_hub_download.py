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
import types
from pathlib import Path

import pytest
from hub_mirror import HubMirror

from birefvid.errors import OfflineError, WeightsError

ASSET = Path(__file__).resolve().parents[1] / "birefvid" / "assets" / "tiny.safetensors"
REPO = "someone/birefnet-b0"  # any repo with a model.safetensors (`--model owner/repo`); the file is tiny's pvt_v2_b0
LITE = ("ZhengPeng7/BiRefNet_lite", "model.safetensors")  # a published variant's (`--model lite`), for the failures


@pytest.fixture(scope="module")
def weights_bytes() -> bytes:
    return ASSET.read_bytes()


@pytest.fixture(scope="module")
def lite_bytes() -> bytes:
    """A model.safetensors `--model lite` loads: swin_v1_t's keys and shapes, the deterministic test weights in float16
    (89 MB, made in about 3 s), so the published name's card, repo and backbone check are the real ones. Built on the
    meta device (Swin's window index is made on the CPU even there; BatchNorm's counters, left out, are optional)."""
    import torch
    from safetensors.torch import save

    from birefvid.models import BiRefNet
    from birefvid.models.test_weights import deterministic_tensor

    with torch.device("meta"):
        model = BiRefNet("swin_v1_t")
    state = {k: torch.from_numpy(deterministic_tensor(k, tuple(v.shape))).half() if v.is_floating_point() else v.contiguous()
             for k, v in model.state_dict().items() if v.is_floating_point() or not v.is_meta}  # fmt: skip
    return save(state)


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


def test_a_first_run_downloads_through_the_mirror_with_a_bar_named_after_the_file_then_runs_offline(tmp_path, picture, lite_bytes):
    """`--model lite` as a user behind a mirror: a terminal shows the download's bar, named model.safetensors (the
    mirror sends no Content-Disposition: it was named after the blob's hash); -q shows neither bar nor notice; the
    cached file then runs with HF_HUB_OFFLINE=1."""
    with HubMirror({LITE: lite_bytes}) as mirror:
        mirror.rate = 100e6  # most of a second: a bar has time to show
        args = [sys.executable, "-m", "birefvid", "image", str(picture), "-o", "out.png", "--model", "lite", "--resolution", "64"]
        code, shown = _in_terminal(args, _env(tmp_path, mirror), tmp_path)
        assert code == 0, shown
        assert f"downloading model.safetensors from Hugging Face repo {LITE[0]} (first use; cached afterwards) through {mirror.url}" in shown
        assert "model.safetensors: 100%" in shown, shown
        assert "(…)" not in shown  # the blob's hash, cut to fit, was the bar's name
        assert [r[0] for r in mirror.requests] == ["HEAD", "GET"]
        assert (tmp_path / "out.png").is_file()

        (tmp_path / "hf").rename(tmp_path / "hf-first")
        code, shown = _in_terminal([*args[:3], "-q", *args[3:6], "quiet.png", *args[7:]], _env(tmp_path, mirror), tmp_path)
        assert code == 0, shown
        assert shown.strip() == "", shown  # -q: no progress of any kind, the download's included
    result = _image(tmp_path, picture, mirror, model="lite", HF_HUB_OFFLINE="1")  # the mirror is gone: the cache serves it
    assert result.returncode == 0, result.stderr
    assert "downloading" not in result.stderr


def test_a_connection_dropped_mid_file_resumes_from_where_it_broke_off(tmp_path, in_process_hub, weights_bytes):
    from birefvid.models.weights import fetch_hub_file

    with HubMirror({(REPO, "model.safetensors"): weights_bytes}) as mirror:
        mirror.drop_after, mirror.drops = len(weights_bytes) // 2, 1
        in_process_hub(mirror)
        path = fetch_hub_file(REPO, "model.safetensors")
    ranges = [r[2] for r in mirror.gets()]
    assert ranges[0] is None and ranges[1] and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-", mirror.requests
    assert path.read_bytes() == weights_bytes


def test_a_link_that_keeps_dropping_is_one_error_line_keeps_nothing_and_a_rerun_completes(tmp_path, picture, weights_bytes, in_process_hub):
    """huggingface_hub resumes five times; then one error line (no RemoteProtocolError traceback-ish "could not load
    the model" line), exit 2, nothing in the cache; its retry warnings once each (not again bare), one line each."""
    from birefvid.models.weights import fetch_hub_file

    with HubMirror({(REPO, "model.safetensors"): weights_bytes}) as mirror:
        mirror.drop_after, mirror.drops = 12_000_000, 100  # past the first 10 MiB piece, never past the second
        result = _image(tmp_path, picture, mirror)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        errors = [line for line in lines if line.startswith("birefvid: error:")]
        assert errors == [lines[-1]], result.stderr
        assert f"cannot download model.safetensors from Hugging Face repo {REPO}: the connection to the mirror {mirror.url} (HF_ENDPOINT) broke off" in lines[-1]
        assert "run the command again" in lines[-1]
        assert not any(line.startswith(("Error while downloading", "Trying to resume")) for line in lines), result.stderr
        assert all(line.startswith(("birefvid:", "huggingface_hub.")) for line in lines), result.stderr
        assert not _cache_files(tmp_path) and not (tmp_path / "out.png").exists()

        mirror.drop_after = None
        in_process_hub(mirror)
        assert fetch_hub_file(REPO, "model.safetensors").read_bytes() == weights_bytes  # the next run's download


def test_ctrl_c_in_a_download_leaves_nothing_a_rerun_trusts(tmp_path, picture, weights_bytes, in_process_hub):
    from birefvid.models.weights import fetch_hub_file

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
        in_process_hub(mirror)
        assert fetch_hub_file(REPO, "model.safetensors").read_bytes() == weights_bytes
    assert [r[2] for r in mirror.gets()] == [None, None]  # downloaded again, whole: no part of the first trusted


@pytest.fixture()
def in_process_hub(tmp_path, monkeypatch):
    """fetch_hub_file in this process against a mirror, huggingface_hub's back-off waits skipped (its retries kept)."""
    import huggingface_hub.constants as constants
    import huggingface_hub.file_download as file_download
    import huggingface_hub.utils._http as hub_http

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_http, "time", types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith("_") and k != "sleep"}, sleep=lambda s: None))

    def use(mirror: HubMirror) -> None:
        monkeypatch.setattr(constants, "ENDPOINT", mirror.url)  # as HF_ENDPOINT sets both when huggingface_hub is imported
        template = mirror.url + "/{repo_id}/resolve/{revision}/{filename}"
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
        if hasattr(file_download, "HUGGINGFACE_CO_URL_TEMPLATE"):  # huggingface_hub 0.x took its own copy at import
            monkeypatch.setattr(file_download, "HUGGINGFACE_CO_URL_TEMPLATE", template)

    return use


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
def test_a_mirror_in_trouble_is_one_line_naming_it_and_what_it_did(tmp_path, in_process_hub, fault, words):
    from birefvid.models.weights import fetch_hub_file

    with HubMirror({LITE: b"x" * 1000}) as mirror:
        for k, v in fault.items():
            setattr(mirror, k, v)
        in_process_hub(mirror)
        with pytest.raises(OfflineError) as caught:
            fetch_hub_file(*LITE)
    line = str(caught.value)
    assert "\n" not in line
    assert line.startswith(f"cannot download model.safetensors from Hugging Face repo {LITE[0]}: the mirror {mirror.url} (HF_ENDPOINT) {words}"), line
    assert not _cache_files(tmp_path)


def test_a_repo_the_mirror_does_not_hold_says_so(tmp_path, in_process_hub):
    from birefvid.models.weights import fetch_hub_file

    with HubMirror({LITE: b"x" * 1000}) as mirror:
        in_process_hub(mirror)
        with pytest.raises(WeightsError) as caught:
            fetch_hub_file("ZhengPeng7/BiRefNet", "model.safetensors")
    assert str(caught.value).startswith(f"ZhengPeng7/BiRefNet/model.safetensors does not exist on the mirror {mirror.url} (HF_ENDPOINT)")
    assert "a mirror may not hold every repo" in str(caught.value)


def test_a_cut_short_file_in_the_cache_names_the_download_to_redo(tmp_path, picture, weights_bytes, in_process_hub):
    """A blob cut short after it was cached (a full disk, a copy): one line, not safetensors' traceback."""
    from birefvid.models.weights import fetch_hub_file

    with HubMirror({(REPO, "model.safetensors"): weights_bytes}) as mirror:
        in_process_hub(mirror)
        fetch_hub_file(REPO, "model.safetensors")
    (blob,) = _cache_files(tmp_path)
    with blob.open("r+b") as f:
        f.truncate(len(weights_bytes) // 3)
    result = _image(tmp_path, picture, mirror, HF_HUB_OFFLINE="1")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "cut short" in line and f"fetch it again with `birefvid models --download {REPO}` (HF_HUB_OFFLINE unset)" in line, line


def test_a_proxy_that_refuses_is_named_not_the_mirror(tmp_path, in_process_hub, monkeypatch):
    """httpx says "Connection refused" alike for a proxy and the server behind it: the line named the mirror."""
    import huggingface_hub.utils._http as hub_http

    from birefvid.models.weights import fetch_hub_file

    with HubMirror({LITE: b"x" * 1000}) as mirror:
        in_process_hub(mirror)
        for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", "http://user:secret@127.0.0.1:9")  # the discard port: refused at once
        close = getattr(hub_http, "close_session", None) or hub_http.reset_sessions  # 1.x's, 0.x's (requests)
        close()  # the HTTP client reads the proxy settings as it is made
        try:
            with pytest.raises(OfflineError) as caught:
                fetch_hub_file(*LITE)
        finally:
            monkeypatch.undo()
            close()
    line = str(caught.value)
    assert "the proxy http://user:***@127.0.0.1:9 (HTTP_PROXY)" in line, line  # httpx: "could not be reached through"; requests: "refused"
    assert "secret" not in line and not mirror.requests


def test_a_mirror_serving_other_bytes_of_the_right_size_is_caught_and_nothing_kept(tmp_path, in_process_hub):
    """huggingface_hub checks a plain HTTP download by its size alone: a mirror's damaged copy was cached and loaded."""
    from birefvid.models.weights import fetch_hub_file

    with HubMirror({LITE: bytes(range(256)) * 40}) as mirror:
        mirror.corrupt = True
        in_process_hub(mirror)
        with pytest.raises(OfflineError) as caught:
            fetch_hub_file(*LITE)
        assert f"the mirror {mirror.url} (HF_ENDPOINT) sent a damaged file (its SHA-256 is " in str(caught.value)
        assert not _cache_files(tmp_path)
        assert not list((tmp_path / "hf" / "hub").rglob("snapshots/*/model.safetensors"))
        mirror.corrupt = False
        path = fetch_hub_file(*LITE)  # the next run downloads it again, whole
    assert path.read_bytes() == bytes(range(256)) * 40



def test_ctrl_c_during_the_hash_check_leaves_nothing_a_rerun_takes_as_checked(tmp_path, in_process_hub, monkeypatch):
    """huggingface_hub links the file into the cache before birefvid hashes it: a Ctrl-C in the check (2 s for
    `general`) left a damaged copy that every later run, `models --download` included, took as "already in the cache"."""
    import birefvid.models.weights as weights

    data = bytes(range(256)) * 40
    with HubMirror({LITE: data}) as mirror:
        mirror.corrupt = True  # what the unfinished check would have caught
        in_process_hub(mirror)

        def interrupted(path: Path) -> str:  # Ctrl-C arrives while the file is hashed
            raise KeyboardInterrupt

        hashed = weights._sha256
        monkeypatch.setattr(weights, "_sha256", interrupted)
        with pytest.raises(KeyboardInterrupt):
            weights.fetch_hub_file(*LITE)
        monkeypatch.setattr(weights, "_sha256", hashed)
        assert weights.cached_hub_file(*LITE) is None and not _cache_files(tmp_path)
        with pytest.raises(OfflineError, match="sent a damaged file"):  # the next run downloads it again and checks it
            weights.fetch_hub_file(*LITE)
    assert len(mirror.gets()) == 2


def test_an_older_huggingface_hub_without_tqdm_class_still_downloads_and_its_errors_are_said():
    """pyproject allows huggingface_hub from 0.25, whose hf_hub_download has no ``tqdm_class`` (passing it failed every
    download with a TypeError) and which speaks HTTP through requests, not httpx2 (the error path imported httpx2)."""
    import requests

    from birefvid.models.weights import _bar_option, _transport_failure

    def old_download(repo_id, filename, repo_type=None, local_files_only=False):  # 0.25–1.x's parameters, less the rest
        return ""

    from huggingface_hub import hf_hub_download

    assert _bar_option(old_download, "model.safetensors") == {}
    assert set(_bar_option(hf_hub_download, "model.safetensors")) <= {"tqdm_class"}
    assert _transport_failure(requests.exceptions.ProxyError("refused")) == "proxy"
    assert _transport_failure(requests.exceptions.ConnectTimeout("slow")) == "unreached"
    assert _transport_failure(requests.exceptions.ChunkedEncodingError("cut")) == "broke off"
    assert _transport_failure(ValueError("not the network's")) is None


def test_an_older_huggingface_hubs_bare_http_error_is_said_as_the_servers_status():
    """huggingface_hub 0.x (requests) lets requests' own HTTPError out of a HEAD that got 500 after its retries (as the
    LocalEntryNotFoundError's cause): the line said the connection "broke off and resuming failed", not the 500."""
    import requests

    from birefvid.models.weights import _download_failure
    from huggingface_hub.errors import LocalEntryNotFoundError

    response = requests.Response()
    response.status_code, response.reason = 500, "Internal Server Error"
    failed = LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub ...")
    failed.__cause__ = requests.exceptions.HTTPError("500 Server Error: Internal Server Error for url: ...", response=response)
    why = _download_failure(failed)
    assert why is not None and why.endswith("answered 500 Internal Server Error (the server's trouble: run the command again later)"), why


def test_an_older_huggingface_hubs_proxy_error_names_the_proxy(monkeypatch):
    """huggingface_hub 0.x (requests) raises ProxyError for a refusing proxy: the line quoted urllib3's
    "(MaxRetryError('HTTPConnectionPool(host=..." and told to check HTTPS_PROXY whatever variable set it."""
    import huggingface_hub.constants as constants
    import requests

    from birefvid.models.weights import _download_failure

    monkeypatch.setattr(constants, "ENDPOINT", "http://mirror.example:8080")
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://user:secret@127.0.0.1:9")
    why = _download_failure(requests.exceptions.ProxyError("(MaxRetryError(\"HTTPConnectionPool(host='127.0.0.1', port=9): ..."))
    assert why == ("the proxy http://user:***@127.0.0.1:9 (HTTP_PROXY) refused the connection to the mirror http://mirror.example:8080 "
                   "(HF_ENDPOINT): check the proxy, or leave the server out of it with NO_PROXY"), why


def test_huggingface_hubs_own_handler_stays_where_its_records_go_nowhere_else():
    """A Python API user's program with a root handler that had turned huggingface_hub's propagation off
    (``huggingface_hub.utils.logging.disable_propagation()``): removing the library's handler hid its warnings."""
    import logging

    from birefvid.models import weights

    library = logging.getLogger("huggingface_hub")
    root = logging.getLogger()
    mine, theirs = logging.StreamHandler(), logging.StreamHandler()
    saved = (list(library.handlers), library.propagate, list(root.handlers))
    try:
        library.handlers[:] = [theirs]
        root.addHandler(mine)
        library.propagate = False
        weights._one_log_handler.cache_clear()
        weights._one_log_handler()
        assert library.handlers == [theirs]
        library.propagate = True  # the default: its records reach the program's handler; the second, bare, copy goes
        weights._one_log_handler.cache_clear()
        weights._one_log_handler()
        assert library.handlers == []
    finally:
        library.handlers[:], library.propagate = saved[0], saved[1]
        root.handlers[:] = saved[2]
        weights._one_log_handler.cache_clear()


def test_a_part_an_older_huggingface_hub_keeps_is_said_not_denied(tmp_path, in_process_hub):
    """huggingface_hub 0.x and 1.0 keep a failed download's ``.incomplete`` blob to resume from: the line said
    "nothing of it was kept in the cache"."""
    import huggingface_hub.constants as constants

    from birefvid.models.weights import _download_error

    blobs = Path(constants.HF_HUB_CACHE) / "models--someone--birefnet-b0" / "blobs"
    assert "nothing of it was kept in the cache" in str(_download_error(REPO, "model.safetensors", "model", "it broke"))
    blobs.mkdir(parents=True)
    (blobs / ("0" * 64 + ".incomplete")).write_bytes(b"part")
    line = str(_download_error(REPO, "model.safetensors", "model", "it broke"))
    assert "nothing of it was kept" not in line and "kept for the next run to resume from" in line, line
