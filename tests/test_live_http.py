"""HTTP preview sink: real HTTP clients and headless Chromium see the pictures sent, and close() never hangs."""

from __future__ import annotations

import base64
import http.client
import os
import select
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
import pytest

from birefvid.errors import ConfigError, SinkError, cli_naming
from birefvid.io.http_preview import BOUNDARY, HttpPreviewSink
from system_tools import need_binary, own_temp_dir

W, H = 96, 64


def _picture(seed: int, w: int = W, h: int = H) -> np.ndarray:
    """A smooth rgb gradient whose hue depends on ``seed`` (JPEG keeps smooth pictures close)."""
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // (w - 1) + seed * 40) % 256
    g = y * 255 // (h - 1)
    b = np.full_like(x, (seed * 97) % 256)
    return np.dstack([r, g, b]).astype(np.uint8)


def _mean_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _get(url: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of a GET, HTTP errors included."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def _decode_rgb(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None, "not a decodable JPEG"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image.ndim == 3 else image


@pytest.fixture
def preview():
    sink = HttpPreviewSink("127.0.0.1", 0)
    yield sink
    sink.close()


class _Stream:
    """A client of /stream.mjpg on a plain socket (so its timeout stays adjustable): status, headers, parts."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        self.file = self.sock.makefile("rb")
        self.status = int(self.file.readline().split()[1])
        self.headers = http.client.parse_headers(self.file)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _read_part(resp: BinaryIO) -> bytes:
    """The JPEG of the next multipart part (boundary line, headers, Content-Length bytes)."""
    line = resp.readline()
    assert line.strip() == f"--{BOUNDARY}".encode(), line
    headers = {}
    while True:
        line = resp.readline().strip()
        if not line:
            break
        key, _, value = line.decode().partition(":")
        headers[key.strip().lower()] = value.strip()
    assert headers["content-type"] == "image/jpeg"
    body = resp.read(int(headers["content-length"]))
    assert body[:2] == b"\xff\xd8" and body[-2:] == b"\xff\xd9", "part is not a complete JPEG"
    assert resp.read(2) == b"\r\n", "a part must end with CRLF before the next boundary"
    return body



def _run_while_looking(job, look, seen: dict) -> dict:
    """Run live ``job`` with the red-key model while ``look(switch)``, on a thread of its own once the run shows
    pictures, fills ``seen``; the run ends when ``look`` returns, and what it raised is raised here, not lost."""
    from birefvid.api import run_live
    from process_fixtures import red_key_segmenter

    stop = threading.Event()
    lookers: list[threading.Thread] = []

    def watch(switch) -> None:
        try:
            assert switch.showing.wait(60), "the run never showed a picture"
            look(switch)
        except BaseException as e:  # said by the test, not lost in this thread
            seen["error"] = e
        finally:
            stop.set()

    def on_effects(switch) -> None:
        lookers.append(threading.Thread(target=watch, args=(switch,), daemon=True))
        lookers[-1].start()

    report = run_live(job, segmenter=red_key_segmenter(), on_effects=on_effects, stop=stop)
    for looker in lookers:
        looker.join(30)
    assert "error" not in seen, seen["error"]
    return report


def _cut_out_shot(browser, url: str, size: tuple[int, int], width: int):
    """The cut-out page at ``url`` in a ``size`` tab over a transparent background (as OBS composites it), once its
    canvas is ``width`` pixels wide: (the tab, its screenshot as (H, W, 4) RGBA)."""
    tab = browser.open(url, size)
    tab.call("Emulation.setDefaultBackgroundColorOverride", color={"r": 0, "g": 0, "b": 0, "a": 0})
    tab.until(f'document.getElementById("picture").width === {width}', 20, "the cut-out")
    tab.wait(0.3)
    shot = base64.b64decode(tab.call("Page.captureScreenshot", format="png")["data"])
    return tab, cv2.cvtColor(cv2.imdecode(np.frombuffer(shot, np.uint8), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)


def _red_subject_in_a_blue_room(path: Path, columns: slice) -> str:
    """A 10 s 128x96 camera clip: a blue room, and a red subject (which ``red_key_segmenter`` finds) in ``columns``;
    returns a free preview address for the run that shows it."""
    from live_media import free_port
    from media import make_video

    image = np.zeros((96, 128, 3), np.uint8)
    image[..., 2] = 255
    image[24:72, columns] = (255, 0, 0)
    make_video(path, n_frames=240, size=(128, 96), fps=24, with_audio=False, frames=[image] * 240)
    return f"http://127.0.0.1:{free_port()}"

def test_snapshot_is_503_before_the_first_picture_then_the_newest(preview):
    status, ctype, body = _get(f"{preview.url}snapshot.jpg")
    assert status == 503 and ctype.startswith("text/plain") and b"no picture yet" in body

    for seed in (1, 2):
        sent = _picture(seed)
        preview.send(sent, seed / 25)
        status, ctype, body = _get(f"{preview.url}snapshot.jpg")
        assert status == 200 and ctype == "image/jpeg"
        got = _decode_rgb(body)
        assert got.shape == sent.shape
        assert _mean_err(got, sent) < 3.0
    assert preview.pictures_sent == 2


def test_non_square_pixels_are_shown_square():
    """A D1 camera's 12:11 pixels: a browser shows JPEG pixels square, so the preview was squeezed."""
    from fractions import Fraction

    sent = _picture(3, 88, 64)  # 88 px of 12:11 pixels are 96 square ones
    from birefvid.io.live_sinks import open_live_sink

    with open_live_sink("http://127.0.0.1:0", width=88, height=64, fps=25, kind="rgb", sample_aspect_ratio=Fraction(12, 11)) as sink:
        sink.send(sent, 0.0)
        got = _decode_rgb(_get(f"{sink.url}snapshot.jpg")[2])
    assert got.shape == (64, 96, 3)
    assert _mean_err(got, cv2.resize(sent, (96, 64), interpolation=cv2.INTER_LINEAR)) < 3.0


def test_pictures_are_encoded_only_when_a_viewer_asks_and_once_each(preview):
    """Nobody watching costs no JPEG encoding (~10 ms a 1080p picture); a picture asked for twice is encoded once."""
    for i in range(30):
        preview.send(_picture(i), i / 30)
    assert preview.pictures_sent == 30 and preview.board.encoded == 0
    for _ in range(2):
        status, kind, body = _get(preview.url + "snapshot.jpg")
        assert (status, kind) == (200, "image/jpeg") and _mean_err(_decode_rgb(body), _picture(29)) < 4
    assert preview.board.encoded == 1
    preview.send(_picture(30), 1.0)
    assert _mean_err(_decode_rgb(_get(preview.url + "snapshot.jpg")[2]), _picture(30)) < 4
    assert preview.board.encoded == 2


def test_rgba_shows_over_a_checkerboard_and_gray_stays_gray(preview):
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = (20, 200, 40)
    rgba[:, W // 2 :, 3] = 255  # left half transparent, right half opaque green
    preview.send(rgba, 0.0)
    got = _decode_rgb(_get(f"{preview.url}snapshot.jpg")[2])
    left, right = got[:, : W // 2 - 4].astype(int), got[:, W // 2 + 4 :].astype(int)
    assert np.abs(right - (20, 200, 40)).mean() < 6
    # transparent pixels show the two greys of the checkerboard, not the hidden green
    assert np.abs(left[..., 0] - left[..., 1]).mean() < 4 and left.std() > 15
    assert 120 < left.mean() < 230

    gray = _picture(3)[..., 1].copy()
    preview.send(gray, 0.04)
    got = _decode_rgb(_get(f"{preview.url}snapshot.jpg")[2])
    assert got.ndim == 2 and _mean_err(got, gray) < 3.0


def test_stream_sends_the_newest_picture_once_per_update(preview):
    for seed in range(5):  # pictures sent before anyone watched are not replayed
        preview.send(_picture(seed), seed / 25)
    stream = _Stream(preview.port)
    try:
        assert stream.status == 200
        assert stream.headers["Content-Type"] == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        first = _decode_rgb(_read_part(stream.file))
        assert _mean_err(first, _picture(4)) < 3.0

        preview.send(_picture(9), 0.5)
        second = _decode_rgb(_read_part(stream.file))
        assert _mean_err(second, _picture(9)) < 3.0 and _mean_err(second, first) > 20

        stream.sock.settimeout(0.7)  # nothing new was sent, so nothing more arrives
        with pytest.raises(TimeoutError):
            stream.file.readline()
    finally:
        stream.close()


def test_page_links_the_stream_and_unknown_paths_are_404(preview):
    status, ctype, body = _get(preview.url)
    assert status == 200 and ctype.startswith("text/html")
    assert b'<img src="/stream.mjpg"' in body and b"<title>" in body
    status, _, body = _get(f"{preview.url}nothing-here")
    assert status == 404 and b"stream.mjpg" in body


def test_a_preview_on_loopback_answers_only_to_loopback_names(preview):
    """A web page whose name its owner pointed at 127.0.0.1 (DNS rebinding) reads the preview with its
    own name in Host: a preview meant for this machine refuses it, so no site can watch the camera."""
    preview.send(_picture(1), 0.0)

    def get(path: str, host: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", preview.port, timeout=5)
        try:
            conn.request("GET", path, headers={"Host": host})
            reply = conn.getresponse()
            reply.read()
            return reply.status
        finally:
            conn.close()

    for path in ("/", "/snapshot.jpg", "/effect"):
        assert get(path, f"evil.example:{preview.port}") == 403, path
        assert get(path, f"localhost:{preview.port}") == get(path, f"127.0.0.1:{preview.port}") == 200, path
    assert get("/snapshot.jpg", f"[::1]:{preview.port}") == 200


def test_port_in_use_is_one_clear_sink_error(preview):
    with cli_naming(), pytest.raises(SinkError, match=rf"^port {preview.port} on 127\.0\.0\.1 is in use; pick another with --sink http://HOST:PORT$"):
        HttpPreviewSink("127.0.0.1", preview.port)
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        with pytest.raises(SinkError, match=f"port {port} on 127.0.0.1 is in use"):
            HttpPreviewSink("127.0.0.1", port)


def test_viewers_who_leave_before_the_first_picture_free_their_places(preview):
    """While the model warms up nothing is written to a viewer, so one that left was not noticed: a page
    reloaded a few times held its connections until the first picture, and with MAX_CONNECTIONS held
    the preview answered only 503."""
    viewers = [_Stream(preview.port) for _ in range(3)]
    deadline = time.monotonic() + 5
    while preview.viewers < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert preview.viewers == 3
    for viewer in viewers:
        viewer.close()
    deadline = time.monotonic() + 3
    while preview.viewers and time.monotonic() < deadline:
        time.sleep(0.05)
    assert preview.viewers == 0


def test_close_is_quick_with_a_reading_and_a_stalled_viewer():
    sink = HttpPreviewSink("127.0.0.1", 0)
    sink.send(_picture(1), 0.0)
    reader = _Stream(sink.port)
    _read_part(reader.file)
    # a second viewer that never reads: large noisy pictures fill its socket, blocking its writer
    stalled = socket.create_connection(("127.0.0.1", sink.port), timeout=5)
    stalled.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    deadline = time.monotonic() + 5
    while sink.viewers < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.viewers == 2
    noise = np.random.default_rng(0).integers(0, 256, (768, 1024, 3), dtype=np.uint8)
    for i in range(12):
        sink.send(np.roll(noise, i, axis=1), 0.1 + i / 25)
        time.sleep(0.02)
    try:
        t0 = time.monotonic()
        sink.close()
        took = time.monotonic() - t0
        assert took < 1.0, f"close() took {took:.2f} s with open viewers"
        sink.close()  # idempotent
        deadline = time.monotonic() + 1.0  # and no viewer thread is left blocked on its socket
        while sink.viewers and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sink.viewers == 0
        reader.sock.settimeout(3)
        while reader.file.read(65536):  # the reading viewer sees the stream end instead of hanging
            pass
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", sink.port), timeout=2).close()
    finally:
        reader.close()
        stalled.close()


def _screenshot_while_feeding(preview, picture_at, url: str, tmp_path) -> np.ndarray:
    """Headless chromium's 640x480 screenshot of ``url`` (RGB, int) while ``picture_at(i)`` goes to
    ``preview`` 25 times a second, as in a run (chromium waits for the stream's next part)."""
    chromium = need_binary("chromium", "chromium")
    stop = threading.Event()

    def feed() -> None:
        i = 0
        while not stop.is_set() and i < 2000:
            preview.send(picture_at(i), i / 25)
            i += 1
            stop.wait(0.04)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    shot = tmp_path / "shot.png"
    cmd = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=640,480", f"--screenshot={shot}",
        "--virtual-time-budget=2000", url,
    ]
    try:
        with own_temp_dir("chromium-") as env:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    finally:
        stop.set()
        feeder.join(timeout=5)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    return cv2.cvtColor(cv2.imread(str(shot)), cv2.COLOR_BGR2RGB).astype(int)


def test_chromium_shows_the_live_stream(preview, tmp_path):
    magenta, cyan = (255, 0, 255), (0, 255, 255)

    def moving_bar(i: int) -> np.ndarray:  # a cyan bar moving over magenta
        pic = np.empty((240, 320, 3), np.uint8)
        pic[...] = magenta
        x = (i * 8) % 280
        pic[:, x : x + 40] = cyan
        return pic

    img = _screenshot_while_feeding(preview, moving_bar, preview.url, tmp_path)

    def share(colour: tuple[int, int, int]) -> float:
        return float((np.abs(img - colour).max(axis=2) < 40).mean())

    # the 320x240 picture covers a quarter of the 640x480 screenshot: mostly magenta, a cyan bar in it
    assert share(magenta) > 0.12, f"magenta covers {share(magenta):.3f} of the screenshot"
    assert share(cyan) > 0.01, f"cyan covers {share(cyan):.3f} of the screenshot"
    assert preview.pictures_sent > 0


def test_the_picture_alone_fills_an_obs_browser_source(preview, tmp_path):
    """/?picture: no buttons or text around the picture, which fills the source (OBS keys its green)."""
    green = (0, 255, 0)
    img = _screenshot_while_feeding(preview, lambda i: np.full((240, 320, 3), green, np.uint8), preview.url + "?picture", tmp_path)
    covered = float((np.abs(img - green).max(axis=2) < 40).mean())
    assert covered > 0.97, f"the picture covers {covered:.3f} of the 640x480 source"


def test_head_answers_like_get_without_a_body(preview):
    """Health checks (`curl -I`, load balancers) probe with HEAD; it was 501."""
    import http.client

    preview.send(_picture(3), 0.1)
    for path, status, ctype in (("/", 200, "text/html"), ("/snapshot.jpg", 200, "image/jpeg"), ("/stream.mjpg", 200, "multipart/x-mixed-replace"),
                                ("/nothing-here", 404, "text/plain")):  # fmt: skip
        conn = http.client.HTTPConnection("127.0.0.1", preview.port, timeout=5)
        conn.request("HEAD", path)
        response = conn.getresponse()
        assert response.status == status and response.getheader("Content-Type").startswith(ctype), (path, response.status)
        assert response.read() == b""
        conn.close()


def _outward_address() -> str:
    """This machine's address on its network (not loopback), as another machine reaches it; skip without one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # sends nothing
            address = probe.getsockname()[0]
    except OSError:
        address = "127.0.0.1"
    if address.startswith("127."):
        pytest.skip("this machine has no network address besides loopback, so no client can come from elsewhere")
    return address


def _ask(url: str, **headers: str) -> tuple[int, dict, bytes]:
    """(status, headers, body) of a GET with ``headers``, HTTP errors included."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture
def open_preview(tmp_path, monkeypatch):
    """A preview on 0.0.0.0 (the README's RTSP example), its token kept in a cache folder of its own."""
    monkeypatch.setenv("BIREFVID_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BIREFVID_PREVIEW_TOKEN", raising=False)
    sink = HttpPreviewSink("0.0.0.0", 0)
    sink.send(_picture(1), 0.0)
    yield sink
    sink.close()


def test_a_preview_open_to_the_network_shows_the_camera_only_to_those_given_its_token(open_preview, caplog, tmp_path):
    """--sink http://0.0.0.0:8080 put the camera on every machine of the network, without a password
    (a warning said so). Other machines now need the token the run prints; this machine needs none."""
    sink, lan = open_preview, _outward_address()
    base, token = f"http://{lan}:{sink.port}", sink.token
    assert token and len(token) >= 16
    code, headers, body = _ask(f"{base}/snapshot.jpg")
    assert code == 401 and b"token" in body and headers["WWW-Authenticate"].startswith("Basic")  # the browser's login box
    wrong = token[:-1] + ("y" if token.endswith("x") else "x")  # one character off, never the token itself
    for path in ("/", "/stream.mjpg", "/alpha.mjpg", "/status", "/effect", f"/snapshot.jpg?token={wrong}"):
        assert _ask(base + path)[0] == 401, path
    # the printed URL: the page, which sets the cookie its own requests (status, a reopened stream) carry
    code, headers, page = _ask(f"{base}/?token={token}")
    assert code == 200 and f"/stream.mjpg?token={token}" in page.decode() and f"/?picture&amp;token={token}" in page.decode()
    assert f"/?picture&amp;alpha&amp;token={token}" in page.decode()  # the cut-out for OBS, whose page reads /alpha.mjpg with it
    name, _, value = headers["Set-Cookie"].partition(";")[0].partition("=")
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    code, headers, jpeg = _ask(f"{base}/snapshot.jpg", Cookie=f"other=1; {name}={value}")
    assert code == 200 and _mean_err(_decode_rgb(jpeg), _picture(1)) < 6
    # the cookie is this run's alone: browsers send it to every port of this host, and the kept token, good from run
    # to run, went to each other web server on it; a cookie holding the token (or an old run's cookie) is no key
    assert token not in value and _ask(f"{base}/snapshot.jpg", Cookie=f"{name}={token}")[0] == 401
    assert _ask(f"{base}/snapshot.jpg?token={token}")[0] == 200  # VLC, OBS's media source, a dashboard
    basic = base64.b64encode(f"viewer:{token}".encode()).decode()
    assert _ask(f"{base}/status", Authorization=f"Basic {basic}")[0] == 200  # curl -u :TOKEN, the browser's login box
    # this machine: no token; a page of another site pointed at 127.0.0.1 (DNS rebinding) is not this machine
    assert _ask(f"http://127.0.0.1:{sink.port}/snapshot.jpg")[0] == 200
    # ... but gets no token in the page unless it showed it: a reverse proxy here, or another user of this machine
    assert token not in _ask(f"http://127.0.0.1:{sink.port}/")[2].decode() and token in _ask(f"http://127.0.0.1:{sink.port}/?token={token}")[2].decode()
    assert _ask(f"http://127.0.0.1:{sink.port}/snapshot.jpg", Host=f"evil.example:{sink.port}")[0] == 401
    # -v logs each request, but not the token its URL shows (only the run's first line prints it)
    with caplog.at_level("DEBUG", logger="birefvid.io.http_preview"):
        assert _ask(f"{base}/?picture&token={token}")[0] == 200
    assert "GET /?picture&token=..." in caplog.text and token not in caplog.text
    caplog.clear()
    # the token is kept: the next run's URL is the same (bookmarks, OBS sources)
    with caplog.at_level("WARNING", logger="birefvid.io.http_preview"):
        again = HttpPreviewSink("0.0.0.0", 0)
        again.close()
    assert again.token == token
    [record] = [r for r in caplog.records if "token=" in r.getMessage()]
    line = record.getMessage()
    assert f"http://{lan}:{again.port}/?token={token}" in line and f"http://127.0.0.1:{again.port}/" in line
    from birefvid.cli import CliLogFormatter  # which hides URL secrets in every other line

    assert f"/?token={token} " in CliLogFormatter().format(record)
    kept = tmp_path / "cache" / "preview-token"
    assert kept.read_text().strip() == token and kept.stat().st_mode & 0o777 == 0o600


def test_a_preview_token_can_be_set_and_a_bad_one_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("BIREFVID_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BIREFVID_PREVIEW_TOKEN", "gate-camera-2026")
    sink = HttpPreviewSink("0.0.0.0", 0)
    sink.close()
    assert sink.token == "gate-camera-2026" and not (tmp_path / "cache" / "preview-token").exists()
    for bad in ("short", "has space in it", "ünïcödé-token"):
        monkeypatch.setenv("BIREFVID_PREVIEW_TOKEN", bad)
        with pytest.raises(ConfigError, match="BIREFVID_PREVIEW_TOKEN"):
            HttpPreviewSink("0.0.0.0", 0)
    monkeypatch.delenv("BIREFVID_PREVIEW_TOKEN")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "preview-token").write_text("\n")  # emptied by hand
    with pytest.raises(ConfigError, match="delete it"):
        HttpPreviewSink("0.0.0.0", 0)
    loopback = HttpPreviewSink("127.0.0.1", 0)
    loopback.close()  # its server thread left running broke a later test's check that no preview outlives its run
    assert loopback.token is None  # loopback: no token, no file read


@pytest.mark.skipif(os.name != "posix", reason="owners and modes are POSIX's")
def test_a_token_another_user_planted_in_a_shared_cache_is_refused(tmp_path, monkeypatch):
    """In a shared cache folder another user could write the token file first (a token they know, or a link
    to one): the preview then took it, and they watched the camera from the LAN."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("BIREFVID_CACHE_DIR", str(cache))
    monkeypatch.delenv("BIREFVID_PREVIEW_TOKEN", raising=False)
    kept = cache / "preview-token"
    (tmp_path / "mallory").write_text("known-to-mallory\n")
    (tmp_path / "mallory").chmod(0o600)
    kept.symlink_to(tmp_path / "mallory")
    with pytest.raises(ConfigError, match="is a link"):
        HttpPreviewSink("0.0.0.0", 0)
    kept.unlink()
    kept.write_text("known-to-mallory\n")
    real_uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real_uid + 1)  # the file is then another user's
    with pytest.raises(ConfigError, match="another user's"):
        HttpPreviewSink("0.0.0.0", 0)
    monkeypatch.setattr(os, "getuid", lambda: real_uid)
    sink = HttpPreviewSink("0.0.0.0", 0)  # this user's own (its mode unchecked: a FAT mount shows 0755): kept as before
    sink.close()
    assert sink.token == "known-to-mallory"


def test_a_browser_on_another_machine_opens_the_printed_url_and_the_page_works(open_preview, tmp_path):
    """The page's own requests (its status line every 2 s, a reopened stream) are let in (this run's
    cookie, the token its URL holds), so the page neither says "ended" nor stays blank; and the next run
    on the port, which keeps the token but not the cookie, is picked up as on this machine."""
    from devtools import headless_chromium

    sink, lan = open_preview, _outward_address()
    port, status = sink.port, 'document.getElementById("status")'
    stop, feeder = _feeder(sink, 160, 120)
    try:
        with headless_chromium(tmp_path / "profile") as browser:
            tab = browser.open(f"http://{lan}:{port}/?token={sink.token}", (640, 480))
            tab.until(f'{status}.hidden && document.getElementById("picture").naturalWidth === 160', 8, "the picture, no status line")
            # a request without the token in its URL: the cookie lets it in
            tab.eval('fetch("/stream.mjpg?" + Date.now()).then(r => { window.reopened = r.status; r.body.cancel(); })')
            assert tab.until("window.reopened", 5, "the reopened stream's answer") == 200
            assert tab.eval(f"{status}.hidden")  # the status line (polled every 2 s) says nothing is wrong
            stop.set()
            feeder.join(5)
            sink.close()
            tab.until(f'{status}.textContent.includes("not answering")', 6, "the end of the first run")
            second = HttpPreviewSink("0.0.0.0", port)  # the next run: the same kept token, a new session
            stop, feeder = _feeder(second, 200, 100, seed=3)
            try:
                tab.until(f'{status}.hidden && document.getElementById("picture").naturalWidth === 200', 8, "the next run's picture")
            finally:
                stop.set()
                feeder.join(5)
                second.close()
    finally:
        stop.set()
        feeder.join(5)


def test_close_ends_every_connection_a_silent_one_included():
    """A browser opens a connection ahead and sends nothing on it (a preconnect), and a viewer watches: close() left
    the silent one's thread waiting 10 s for a request, and the socket open, after the run had returned ("returns
    with its threads ended", docs/api.md). Now every connection is cut and its thread has ended when close() returns."""
    sink = HttpPreviewSink("127.0.0.1", 0)
    sink.send(_picture(1), 0.0)
    reader = _Stream(sink.port)
    _read_part(reader.file)
    silent = socket.create_connection(("127.0.0.1", sink.port), timeout=30)
    deadline = time.monotonic() + 10
    while _serving_threads() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _serving_threads() == 2
    try:
        sink.close()
        assert _serving_threads() == 0
        t0 = time.monotonic()
        assert silent.recv(1) == b""  # the connection ends now, not after the 10 s a request may take
        assert time.monotonic() - t0 < 5  # 10 s (the handler's timeout) would mean it was not cut
    finally:
        reader.close()
        silent.close()


_SNAPSHOT_AS_THE_PREVIEW_CLOSES = """
import socket, sys, threading, time
import cv2
import numpy as np
from birefvid.io.http_preview import HttpPreviewSink

encoding, real_encode = threading.Event(), cv2.imencode
def encode(*args, **kwargs):  # says when the snapshot's thread enters OpenCV's encoder
    encoding.set()
    return real_encode(*args, **kwargs)
cv2.imencode = encode

sink = HttpPreviewSink("127.0.0.1", 0)
sink.send(np.random.default_rng(0).integers(0, 256, (6000, 8000, 3), dtype=np.uint8), 0.0)  # 0.3-0.6 s to encode
asking = socket.create_connection(("127.0.0.1", sink.port), timeout=30)
asking.sendall(b"GET /snapshot.jpg HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n")
assert encoding.wait(60), "the snapshot was never encoded"
time.sleep(0.05)  # inside the encoder's C code by then, a tenth of its time at most
sink.close()
print("closed", flush=True)
"""


def test_a_script_that_closes_the_preview_while_a_snapshot_is_encoded_exits_cleanly():
    """A snapshot (OBS polling one, a browser) asked for as the run stopped: its thread was still inside OpenCV's JPEG
    encoder when the script ended, and the interpreter's exit cut it off there, which aborts the process ("terminate
    called without an active exception", exit 134; 6 exits of 8 here). close() now waits for it (bounded).

    The script closes the preview once the encode has begun (cv2.imencode wrapped to say so), not after a fixed 0.1 s
    that a loaded machine could spend before the request was read: every run closes mid-encode, so one run shows what
    three did (with close() not waiting, 4 runs of 4 aborted, as did 4 of the fixed-sleep script's)."""
    import sys

    run = subprocess.run([sys.executable, "-c", _SNAPSHOT_AS_THE_PREVIEW_CLOSES], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "closed", (run.returncode, run.stderr[-2000:])
    assert "terminate called" not in run.stderr


def _wait_until_answered(conns: list[socket.socket], count: int, within: float = 10.0) -> None:
    """Wait until the server has answered ``count`` of ``conns`` (its 503s), or ``within`` seconds (generous: a loaded
    machine takes its time to accept dozens of connections): a condition, where a fixed sleep of a second either
    wasted most of it or, on a slow machine, was not enough. The answers stay unread, for the test to read."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if len(select.select(conns, [], [], 0.05)[0]) >= count:
            return


def _serving_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("preview-") and t.name.endswith("-request"))


def test_connections_are_bounded_and_the_extra_ones_get_503(preview):
    """Each connection held a thread and a descriptor, idle ones for 10 s, one sending a byte every
    few seconds for ever: a client opening hundreds (a LAN host, with a preview on 0.0.0.0) took
    threads and descriptors from the run. Now at most MAX_CONNECTIONS are served; the rest get 503
    at once, and once they go a viewer gets pictures again."""
    from birefvid.io import http_preview

    MAX_CONNECTIONS = getattr(http_preview, "MAX_CONNECTIONS", 32)
    preview.send(_picture(1), 0.0)
    before = _serving_threads()
    idle = []
    try:
        for _ in range(MAX_CONNECTIONS + 16):  # each sends half a request and waits
            conn = socket.create_connection(("127.0.0.1", preview.port), timeout=5)
            conn.sendall(b"GET /snapshot.jpg HTTP/1.1\r\n")
            idle.append(conn)
        _wait_until_answered(idle, 16)  # the extra ones told 503: every connection opened is taken in by then
        assert _serving_threads() - before <= MAX_CONNECTIONS
        with pytest.raises(urllib.error.HTTPError) as busy:
            urllib.request.urlopen(f"http://127.0.0.1:{preview.port}/snapshot.jpg", timeout=5)
        assert busy.value.code == 503
    finally:
        for conn in idle:
            conn.close()
    deadline = time.monotonic() + 5
    while _serving_threads() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    status, ctype, body = _get(f"http://127.0.0.1:{preview.port}/snapshot.jpg")
    assert status == 200 and body[:2] == b"\xff\xd8"


def test_one_machine_of_the_network_cannot_take_every_connection(open_preview):
    """A preview on 0.0.0.0 served 32 connections, whoever held them: one machine of the network, without the
    token, opening 32 and sending a byte of its request every few seconds, kept every viewer out (503) for as
    long as it liked. Now one address other than this machine's holds MAX_PER_CLIENT at most."""
    from birefvid.io import http_preview

    MAX_CONNECTIONS, MAX_PER_CLIENT = http_preview.MAX_CONNECTIONS, getattr(http_preview, "MAX_PER_CLIENT", 8)
    sink, lan = open_preview, _outward_address()
    held = []
    try:
        for _ in range(MAX_CONNECTIONS):
            conn = socket.create_connection((lan, sink.port), timeout=5)
            conn.sendall(b"GET /snapshot.jpg HTTP/1.1\r\n")  # half a request, never finished
            held.append(conn)
        _wait_until_answered(held, MAX_CONNECTIONS - MAX_PER_CLIENT)  # the server has taken in every one by then
        assert _ask(f"http://{lan}:{sink.port}/snapshot.jpg?token={sink.token}")[0] == 503  # that machine is at its share
        status, _, body = _ask(f"http://127.0.0.1:{sink.port}/snapshot.jpg")  # everyone else still gets in
        assert status == 200 and body[:2] == b"\xff\xd8"
        answered = sum(1 for conn in held if _answered_at_once(conn))
        assert answered == MAX_CONNECTIONS - MAX_PER_CLIENT  # the extra ones were told 503 and closed
    finally:
        for conn in held:
            conn.close()


def _answered_at_once(conn: socket.socket) -> bool:
    """True when the server has answered ``conn`` already (a 503), False when it still waits for the request."""
    conn.settimeout(0.05)
    try:
        return conn.recv(64).startswith(b"HTTP/1.0 503")
    except socket.timeout:
        return False


def test_another_site_cannot_show_the_page_in_a_frame(preview, tmp_path):
    """Framed by another site's page under a decoy, the page's own "none" button got the visitor's
    click (clickjacking: the click is the page's own, so the Origin check passed) and showed the room.
    The page now refuses to be framed: chromium shows nothing of it inside another page."""
    magenta = (255, 0, 255)
    picture = np.empty((240, 320, 3), np.uint8)
    picture[...] = magenta
    attacker = tmp_path / "decoy.html"
    attacker.write_text(f'<html><body style="margin:0;background:#fff"><iframe src="{preview.url}" '
                        'style="border:0;width:640px;height:480px"></iframe></body></html>')
    img = _screenshot_while_feeding(preview, lambda i: picture, attacker.as_uri(), tmp_path)
    shown = float((np.abs(img - magenta).max(axis=2) < 40).mean())
    assert shown < 0.001, f"the framed preview covers {shown:.3f} of the decoy page"
    status, _, body = _get(preview.url)  # opened on its own, it works as before
    assert status == 200 and b'<img src="/stream.mjpg"' in body


# ---------------------------------------------------------------- the page in a browser (DevTools): layout, status, buttons


_LAYOUT = """(() => { const i = document.querySelector("img"), r = i.getBoundingClientRect(), d = document.documentElement;
  return {inner: innerWidth, scroll: d.scrollWidth, client: d.clientWidth, left: r.left, right: r.right, w: r.width, h: r.height,
          natural: i.naturalWidth, title: document.title}; })()"""


def _feeder(sink: HttpPreviewSink, w: int, h: int, seed: int = 0) -> tuple[threading.Event, threading.Thread]:
    """Sends ``_picture(seed)`` of w x h to ``sink`` 25 times a second until the event is set."""
    stop = threading.Event()

    def feed() -> None:
        i = 0
        while not stop.is_set():
            sink.send(_picture(seed, w, h), i / 25)
            i += 1
            stop.wait(0.04)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return stop, thread


def test_a_phone_shows_the_whole_picture_without_console_errors(preview, tmp_path):
    """On a 375x667 phone the page was laid out 980 px wide and zoomed out (no viewport tag): tiny text
    and buttons; every load logged a 404 for /favicon.ico in the console."""
    from devtools import headless_chromium

    stop, feeder = _feeder(preview, 640, 360)
    try:
        with headless_chromium(tmp_path / "profile") as browser:
            tab = browser.open(preview.url, (375, 667), mobile=True)
            tab.until('document.querySelector("img").naturalWidth', 10, "the picture")
            tab.wait(1.0)
            layout = tab.eval(_LAYOUT)
            problems = tab.problems()
    finally:
        stop.set()
        feeder.join(5)
    assert layout["inner"] == 375, f"laid out {layout['inner']} px wide on a 375 px phone"
    assert layout["scroll"] <= layout["client"], f"scrolls sideways: {layout}"
    assert layout["left"] >= 0 and layout["right"] <= 375 and layout["natural"] == 640, layout
    assert abs(layout["w"] / layout["h"] - 640 / 360) < 0.02, f"the picture lost its shape: {layout}"
    assert problems == [], problems


def _take_every_connection(sink: HttpPreviewSink) -> list[socket.socket]:
    """Opens connections that send half a request and wait, until the sink serves no more (MAX_CONNECTIONS)."""
    from birefvid.io.http_preview import MAX_CONNECTIONS

    held = []
    for _ in range(MAX_CONNECTIONS + 4):  # the extra ones are answered 503 and closed
        conn = socket.create_connection(("127.0.0.1", sink.port), timeout=5)
        conn.sendall(b"GET /status HTTP/1.1\r\n")
        held.append(conn)
    return held


def test_the_page_says_starting_busy_then_ended_and_picks_up_a_new_run(tmp_path):
    """Before the first picture the page was blank (20-40 s of a first run's export); once the run ended the
    picture froze with nothing but disabled buttons; a run started again on the port was never shown.
    With every connection taken by other viewers (503) the page said the run had ended."""
    from devtools import headless_chromium

    status = 'document.getElementById("status")'
    first = HttpPreviewSink("127.0.0.1", 0)
    port = first.port
    with headless_chromium(tmp_path / "profile") as browser:
        stop, feeder = threading.Event(), threading.Thread()
        try:
            tab = browser.open(first.url, (640, 480))
            starting = tab.until(f'{status}.textContent.includes("starting") && {status}.textContent', 5, "a starting line")
            assert tab.eval("document.title").startswith("starting"), tab.eval("document.title")
            stop, feeder = _feeder(first, 160, 120)
            tab.until(f'{status}.hidden && document.getElementById("picture").naturalWidth === 160', 6, "the picture, no status line")
            held = _take_every_connection(first)
            try:
                busy = tab.until(f'!{status}.hidden && {status}.textContent', 5, "a status line while every connection is taken")
                busy_title = tab.eval("document.title")
            finally:
                for conn in held:
                    conn.close()
            tab.until(f'{status}.hidden', 5, "the status line gone once connections are free")
        finally:
            stop.set()
            if feeder.ident is not None:
                feeder.join(5)
            first.close()
        ended = tab.until(f'{status}.textContent.includes("not answering") && !{status}.hidden && {status}.textContent', 6, "the end")
        assert tab.eval("document.title").startswith("ended")
        second = HttpPreviewSink("127.0.0.1", port)  # the next run, on the same port
        stop, feeder = _feeder(second, 200, 100, seed=3)
        try:
            tab.until(f'{status}.hidden && document.getElementById("picture").naturalWidth === 200', 8, "the new run's picture")
            title = tab.eval("document.title")
        finally:
            stop.set()
            feeder.join(5)
            second.close()
    assert "model" in starting and "ended" in ended, (starting, ended)
    assert "busy" in busy and "ended" not in busy and busy_title.startswith("busy"), (busy, busy_title)
    assert title == "birefvid live preview"


def test_the_buttons_work_from_the_keyboard_and_follow_a_switch_made_elsewhere(preview, tmp_path):
    """The buttons were rebuilt on every change: a button pressed with Enter vanished under the focus (a
    keyboard or screen-reader user was thrown back to the top), and the current effect was a disabled
    button, skipped by Tab and announced as unavailable instead of as the one on."""
    from devtools import headless_chromium

    from birefvid.job import EffectSpec
    from birefvid.runtime.live_effects import EffectSwitch

    effects = EffectSwitch(EffectSpec("blur"))
    preview.attach_effects(effects)
    pressed = """[...document.querySelectorAll("#effects button")].map(b => b.textContent + "=" + b.getAttribute("aria-pressed")).join(" ")"""
    stop, feeder = _feeder(preview, 160, 120)
    try:
        with headless_chromium(tmp_path / "profile") as browser:
            tab = browser.open(preview.url, (640, 480))
            tab.until(f'({pressed}) === "blur=true green=false none=false overlay=false"', 6, "the blur button pressed")
            tab.eval('[...document.querySelectorAll("#effects button")].find(b => b.textContent === "green").focus()')
            for kind in ("keyDown", "keyUp"):
                tab.call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13, text="\r")
            tab.until(f'({pressed}) === "blur=false green=true none=false overlay=false"', 4, "green pressed after Enter")
            assert effects.effect == "green"
            focused = tab.eval("document.activeElement.tagName + ' ' + document.activeElement.textContent")
            effects.select("none", by="terminal")  # a key in the terminal, or another client's POST /effect
            tab.until(f'({pressed}) === "blur=false green=false none=true overlay=false"', 4, "the switch made in the terminal")
            still = tab.eval("document.activeElement.textContent")
            group = tab.eval('document.getElementById("effects").getAttribute("role") + " " + document.getElementById("effects").getAttribute("aria-label")')
            problems = tab.problems()
    finally:
        stop.set()
        feeder.join(5)
    assert focused == "BUTTON green" and still == "green", (focused, still)
    assert group == "group effect" and problems == [], (group, problems)


def _red_column(picture: np.ndarray) -> float:
    """Where a picture's red square is, as a fraction of its width (0: the left edge)."""
    red = (picture[..., 0] > 150) & (picture[..., 1] < 100) & (picture[..., 2] < 100)
    assert red.sum() > 50, "no red square in the picture"
    return float(np.nonzero(red)[1].mean() / picture.shape[1])


def test_the_preview_page_mirrors_your_self_view_but_what_is_sent_and_recorded_is_not(tmp_path):
    """Call apps show you yourself as a mirror does, and send you as you are: the preview page (what you
    look at) shows the red square, left in the camera's picture, on the right; the recording, the JPEGs
    scripts and OBS read and the page's ``?picture`` (OBS's Browser Source) keep it on the left."""
    import base64

    from birefvid.api import build_live_job
    from devtools import headless_chromium
    from live_e2e_tools import decode_video

    assert build_live_job("0", ["window"]).mirrors_preview() and build_live_job("/dev/video2", ["http://127.0.0.1:8080"]).mirrors_preview()
    assert not build_live_job("rtsp://cam.local/1", ["window"]).mirrors_preview()  # not your self-view: as it comes, unless asked
    assert not build_live_job("0", ["window"], mirror_preview=False).mirrors_preview()
    with cli_naming(), pytest.raises(ConfigError, match="--mirror-preview flips only what you look at, the window and the http:// preview page"):
        build_live_job("0", ["virtualcam", "talk.mp4"], mirror_preview=True)
    base = _red_subject_in_a_blue_room(tmp_path / "cam.mp4", slice(8, 40))
    seen: dict[str, object] = {}

    def look(switch) -> None:
        deadline = time.monotonic() + 10
        while (snapshot := _get(f"{base}/snapshot.jpg"))[0] != 200 and time.monotonic() < deadline:  # the sinks get it just after
            time.sleep(0.05)
        seen["snapshot"] = _decode_rgb(snapshot[2])
        with headless_chromium(tmp_path / "profile") as browser:
            tab = browser.open(f"{base}/", (320, 240))
            box = tab.until('(p => p.naturalWidth && p.complete && (r => [r.x, r.y, r.width, r.height])(p.getBoundingClientRect()))'
                            '(document.getElementById("picture"))', 20, "the picture")  # fmt: skip
            tab.wait(0.3)
            shot = base64.b64decode(tab.call("Page.captureScreenshot", format="png")["data"])
            x, y, w, h = (round(v) for v in box)
            seen["page"] = cv2.cvtColor(cv2.imdecode(np.frombuffer(shot, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)[y : y + h, x : x + w]
            bare = browser.open(f"{base}/?picture", (320, 240))
            seen["bare"] = bare.until('document.getElementById("picture").naturalWidth && '
                                      'getComputedStyle(document.getElementById("picture")).transform', 20, "the bare picture")  # fmt: skip

    job = build_live_job(str(tmp_path / "cam.mp4"), [str(tmp_path / "rec.mkv"), base], effect="green", realtime=True,
                         duration=9.0, smooth="none", mirror_preview=True)  # fmt: skip
    report = _run_while_looking(job, look, seen)
    assert report["preview_mirrored"] is True and report["job"]["mirror_preview"] is True
    assert _red_column(seen["page"]) > 0.6, "the preview page is not mirrored"
    assert _red_column(seen["snapshot"]) < 0.4, "/snapshot.jpg, which scripts and OBS read, was mirrored"
    assert seen["bare"] == "none", f"the picture alone, for OBS's Browser Source, is transformed: {seen['bare']}"
    _, frames = decode_video(tmp_path / "rec.mkv")
    assert frames and all(_red_column(f) < 0.4 for f in frames), "the recording was mirrored"


def _matte_picture(w: int = 160, h: int = 120) -> np.ndarray:
    """Straight RGBA: an orange square, fully opaque, over a transparent dark-blue room, with a soft left edge."""
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., :3] = (10, 20, 90)
    rgba[20:100, 40:120, :3] = (230, 120, 40)
    rgba[20:100, 60:120, 3] = 255
    rgba[20:100, 40:60, 3] = np.linspace(0, 255, 20).round().astype(np.uint8)  # the soft edge, 20 px wide
    return rgba


def _alpha_part(port: int) -> np.ndarray:
    """The first picture /alpha.mjpg sends (RGB, int): the newest, at once."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /alpha.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    resp = sock.makefile("rb")
    try:
        assert b" 200 " in resp.readline()
        http.client.parse_headers(resp)
        return _decode_rgb(_read_part(resp)).astype(int)
    finally:
        resp.close()
        sock.close()


def test_alpha_stream_carries_colour_and_matte_in_one_jpeg_encoded_only_while_read(preview, caplog):
    """/alpha.mjpg: each picture above its matte as grey, in one JPEG (they cannot drift apart), encoded only
    for a reader; the matte keeps its grey levels and takes no colour from the picture above it."""
    from birefvid.io.alpha_stack import matte_row

    sent = _matte_picture()
    for i in range(10):
        preview.send(sent, i / 25)
    assert preview.alpha_board.encoded == 0, "encoded with no one reading /alpha.mjpg"
    got = _alpha_part(preview.port)
    assert preview.alpha_board.encoded == 1 and preview.board.encoded == 0  # the plain stream was not encoded either
    top = matte_row(120)
    assert (top, got.shape) == (144, (264, 160, 3)), "layout: 120 colour rows, padded to 128, 16 guard rows, 120 matte rows"
    colour, matte = got[:120], got[top:]
    assert np.abs(colour[30:90, 70:110] - (230, 120, 40)).max() < 8
    assert np.abs(matte - sent[..., 3:4]).max() <= 8, "the matte's grey levels moved"
    assert np.abs(matte[..., 0] - matte[..., 2]).max() <= 2, "the picture's colour leaked into the matte"
    # a blur run's pictures carry no matte: opaque, and the run says why OBS shows the whole room
    with caplog.at_level("WARNING", logger="birefvid.io.http_preview"):
        preview.send(_picture(1, 160, 120), 1.0)
        assert _alpha_part(preview.port)[top:].min() >= 250
    assert "--effect alpha" in caplog.text


def test_obs_browser_source_shows_the_cut_out_over_transparency(tmp_path):
    """An --effect alpha run into OBS's Browser Source (/?picture&alpha): where the matte is 0 the page is fully
    transparent (OBS shows the game), the subject opaque in its own colour, the soft edge neither darkened nor
    haloed; before, the only ways in were a green key (which loses the soft matte and spills on hair) or opaque."""
    from birefvid.api import build_live_job
    from devtools import headless_chromium

    base = _red_subject_in_a_blue_room(tmp_path / "cam.mp4", slice(48, 80))
    seen: dict[str, object] = {}

    def look(switch) -> None:
        with headless_chromium(tmp_path / "profile") as browser:
            tab, seen["shot"] = _cut_out_shot(browser, f"{base}/?picture&alpha", (512, 384), 128)
            seen["problems"] = tab.problems()

    job = build_live_job(str(tmp_path / "cam.mp4"), [base], effect="alpha", realtime=True, duration=30.0, smooth="none")
    _run_while_looking(job, look, seen)
    shot = seen["shot"].astype(int)
    assert shot.shape == (384, 512, 4)  # the 128x96 picture fills the 512x384 source 4x (its subject is where it is below)
    room = np.ones((384, 512), bool)
    room[24 * 4 - 24 : 72 * 4 + 24, 48 * 4 - 24 : 80 * 4 + 24] = False  # the subject and 6 px of its edge, scaled 4x
    assert shot[..., 3][room].max() == 0, "the room shows through where the matte is 0"
    subject = shot[24 * 4 + 24 : 72 * 4 - 24, 48 * 4 + 24 : 80 * 4 - 24]
    assert subject[..., 3].min() == 255 and np.abs(subject[..., :3] - (255, 0, 0)).max() <= 12, "the subject is not opaque red"
    assert seen["problems"] == [], seen["problems"]


def test_the_cut_outs_soft_edge_is_neither_darkened_nor_haloed(preview, tmp_path):
    """Straight alpha drawn as premultiplied darkens a soft edge (hair turns into a dark fringe), premultiplied drawn
    as straight brightens it: along the 20-px ramp the page's alpha follows the matte and its colour stays the subject's."""
    from devtools import headless_chromium

    stop = threading.Event()
    sent = _matte_picture()

    def feed() -> None:
        i = 0
        while not stop.is_set():
            preview.send(sent, i / 25)
            i += 1
            stop.wait(0.04)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        with headless_chromium(tmp_path / "profile") as browser:
            tab, shot = _cut_out_shot(browser, f"{preview.url}?picture&alpha", (640, 480), 160)
            stop.set()
            feeder.join(5)
            preview.close()  # the run ends; the next one on the port is picked up, as /?picture does
            again = HttpPreviewSink("127.0.0.1", preview.port)
            try:
                again.send(_matte_picture(96, 64), 0.0)
                tab.until('document.getElementById("picture").width === 96', 10, "the next run's cut-out")
            finally:
                again.close()
    finally:
        stop.set()
        feeder.join(5)
    got = shot.astype(int)
    row = got[240, :, :]  # the 160x120 picture fills the 640x480 page 4x: the ramp is x 160..240
    ramp = np.linspace(0, 255, 20)
    for x in range(4, 19):  # inside the ramp, away from its ends
        px = row[40 * 4 + x * 4 + 2]
        assert abs(px[3] - ramp[x]) <= 16, f"alpha {px[3]} at ramp step {x}, sent {ramp[x]:.0f}"
        if px[3] >= 64:
            assert np.abs(px[:3] - (230, 120, 40)).max() <= 12, f"colour {px[:3]} at alpha {px[3]}: the edge changed colour"
    assert row[:150, 3].max() == 0 and row[250:470, 3].min() == 255


def test_a_slow_cut_out_page_skips_pictures_instead_of_showing_old_ones(preview, tmp_path):
    """A Browser Source slower than the run (a busy gaming PC) must show the newest picture: reading one part per
    drawing, the browser's and the sockets' buffers queued hundreds of them and the cut-out lagged seconds behind."""
    from devtools import headless_chromium

    stop = threading.Event()

    def feed() -> None:  # 30 fps; picture i says i in its corner block (R: i % 32, G: i // 32, 8 levels a step)
        i = 0
        while not stop.is_set():
            picture = _matte_picture()
            picture[:16, :16] = ((i % 32) * 8, (i // 32 % 32) * 8, 0, 255)
            preview.send(picture, i / 30)
            i += 1
            stop.wait(1 / 30)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    slow = ("const real = window.createImageBitmap;"  # each decode takes 250 ms: the page draws 4 pictures a second
            "window.createImageBitmap = (...a) => new Promise(r => setTimeout(r, 250)).then(() => real(...a));")
    try:
        with headless_chromium(tmp_path / "profile") as browser:
            tab = browser.open("about:blank", (160, 120))
            tab.call("Page.addScriptToEvaluateOnNewDocument", source=slow)
            tab.call("Page.navigate", url=f"{preview.url}?picture&alpha")
            tab.until('document.getElementById("picture").width === 160', 10, "the cut-out")
            tab.wait(3)
            r, g = tab.eval("Array.from(shown.getImageData(4, 4, 1, 1).data.slice(0, 2))")
            behind = (preview.pictures_sent - 1 - (round(r / 8) % 32 + 32 * (round(g / 8) % 32))) % 1024
    finally:
        stop.set()
        feeder.join(5)
    assert behind <= 20, f"the page showed a picture {behind} pictures ({behind / 30:.1f} s) old"


@pytest.mark.parametrize("landing", ["after it began", "before it began"])
def test_a_stop_landing_while_the_preview_server_starts_frees_its_port(monkeypatch, landing: str) -> None:
    """Ctrl-C or SIGTERM landing in the server thread's start(): the sink was never made, so nobody closed it, and
    its server went on answering on the port (a later run, in an API user's process, found it taken)."""
    from live_media import free_port

    port = free_port()
    real_start = threading.Thread.start

    def start_then_signal(thread: threading.Thread) -> None:
        if not thread.name.startswith("preview-"):
            return real_start(thread)
        if landing == "after it began":
            real_start(thread)
        raise KeyboardInterrupt  # the signal handler's raise, within start()

    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "start", start_then_signal)
        with pytest.raises(KeyboardInterrupt):
            HttpPreviewSink("127.0.0.1", port)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    HttpPreviewSink("127.0.0.1", port).close()  # the port is free for the next run


def test_a_preview_server_thread_beginning_late_after_a_stop_ends_quietly(monkeypatch) -> None:
    """A stop landing in the server thread's start() whose thread begins only after the 0.2 s ``exiting.begun`` waits
    (a loaded machine): the clean-up had closed the socket, and the thread's serve_forever then failed on it, an
    "Exception in thread" traceback on stderr."""
    from live_media import free_port

    port = free_port()
    real_start = threading.Thread.start
    late: list[threading.Thread] = []
    failures: list[str] = []

    def start_late_then_signal(thread: threading.Thread) -> None:
        if not thread.name.startswith("preview-"):
            return real_start(thread)
        timer = threading.Timer(0.5, real_start, args=(thread,))  # it begins half a second later
        real_start(timer)
        late.append(thread)
        raise KeyboardInterrupt  # the signal handler's raise, within start()

    monkeypatch.setattr(threading, "excepthook", lambda args: failures.append(f"{args.exc_type.__name__}: {args.exc_value}"))
    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "start", start_late_then_signal)
        with pytest.raises(KeyboardInterrupt):
            HttpPreviewSink("127.0.0.1", port)
    deadline = time.monotonic() + 5
    while not (late[0].ident is not None and not late[0].is_alive()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert late[0].ident is not None and not late[0].is_alive(), "the late thread did not end"
    assert failures == []
    HttpPreviewSink("127.0.0.1", port).close()  # the port is free for the next run
