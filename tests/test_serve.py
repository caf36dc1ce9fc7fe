"""``birefvid serve``: a real HTTP server on an ephemeral 127.0.0.1 port answers as ``birefvid image`` writes,
refuses bad requests with a 4xx and a one-line JSON error, queues a few, and stops cleanly on SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Iterator, Optional

import cv2
import numpy as np
import pytest

from media import write_scene_picture

from birefvid.cli import main
from birefvid.serving.server import CutoutServer
from birefvid.serving.service import CutoutService


pytestmark = pytest.mark.usefixtures("one_cpu_thread")  # speed: conftest says why


MODEL_ARGS = ["--resolution", "64", "--device", "cpu", "--precision", "fp32", "--backend", "torch"]
HELD_OUT_SEED = 9_000_001  # a scene the tiny model never saw in training (as tests/test_tiny_model.py)


@pytest.fixture()
def photo(tmp_path) -> Path:
    return write_scene_picture(tmp_path / "photo.png")


@pytest.fixture(scope="module")
def server(pvt_b0_weights):
    """A server around the seeded test weights at 64x64, as ``birefvid serve --weights W`` + MODEL_ARGS builds it."""
    from birefvid.commands.options import inference_spec, model_spec
    from birefvid.runtime.file_job import segmenter_for

    args = argparse.Namespace(model=None, weights=str(pvt_b0_weights), backbone=None, resolution="64", keep_aspect=False,
                              device="cpu", precision="fp32", backend="torch")  # fmt: skip
    service = CutoutService(args, segmenter_for(model_spec(args), inference_spec(args)), queue=1)
    httpd = CutoutServer("127.0.0.1", 0, service)
    worker = threading.Thread(target=httpd.serve_forever, daemon=True)
    worker.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _request(server: CutoutServer, method: str, path: str, body: Optional[bytes] = None,
             headers: Optional[dict] = None) -> tuple[int, dict, bytes]:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


def _one_line_error(status: int, headers: dict, body: bytes) -> str:
    assert headers["content-type"] == "application/json"
    assert body.count(b"\n") == 1 and body.endswith(b"\n"), body
    return json.loads(body)["error"]


def _image_cli(tmp_path: Path, photo: Path, weights: Path, suffix: str, *options: str) -> bytes:
    out = tmp_path / f"cli{suffix}"
    assert main(["image", str(photo), "-o", str(out), "-q", "--weights", str(weights), *MODEL_ARGS, *options]) == 0
    return out.read_bytes()


@pytest.mark.parametrize("query, suffix, options, content_type", [
    ("", ".png", [], "image/png"),
    ("?output=mask", ".png", ["--output", "mask"], "image/png"),
    ("?output=composite&background=white&format=jpeg", ".jpg", ["--output", "composite", "--background", "white"], "image/jpeg"),
    ("?output=green&key-color=%2300b140&format=webp", ".webp", ["--output", "green", "--key-color", "#00b140"], "image/webp"),
    ("?output=blur&blur_sigma=4&threshold=0.5&format=tif", ".tif", ["--output", "blur", "--blur-sigma", "4", "--threshold", "0.5"], "image/tiff"),
    ("?output=overlay&overlay-color=yellow&overlay_opacity=0.3", ".png", ["--output", "overlay", "--overlay-color", "yellow", "--overlay-opacity", "0.3"], "image/png"),
])  # fmt: skip
def test_reply_equals_birefvid_image_byte_for_byte(server, tmp_path, photo, pvt_b0_weights, query, suffix, options, content_type):
    status, headers, body = _request(server, "POST", f"/v1/remove{query}", photo.read_bytes(), {"Content-Type": "image/png"})
    assert status == 200 and headers["content-type"] == content_type
    # byte for byte, JPEG and WebP too: OpenCV's libjpeg-turbo and libwebp gave the same bytes in 2000 encodes of one picture
    assert body == _image_cli(tmp_path, photo, pvt_b0_weights, suffix, *options)


def test_multipart_field_file_gives_the_same_rgba_png(server, tmp_path, photo, pvt_b0_weights):
    boundary = "----birefvidtest"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"photo.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + photo.read_bytes() + f"\r\n--{boundary}--\r\n".encode()  # fmt: skip
    status, headers, body = _request(server, "POST", "/v1/remove", form, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200 and headers["content-type"] == "image/png"
    rgba = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (48, 64, 4)
    assert body == _image_cli(tmp_path, photo, pvt_b0_weights, ".png")


def test_requests_reuse_the_model_loaded_at_start(server, photo, monkeypatch):
    from birefvid.runtime import file_job

    def no_second_load(*args, **kwargs):
        raise AssertionError("the model was loaded again for a request")

    monkeypatch.setattr(file_job, "segmenter_for", no_second_load)
    status, headers, body = _request(server, "POST", "/v1/remove", photo.read_bytes())
    assert status == 200 and headers["content-type"] == "image/png", body[:200]


def test_health_says_ready_and_the_model(server):
    status, headers, body = _request(server, "GET", "/health")
    assert status == 200 and headers["content-type"] == "application/json"
    facts = json.loads(body)
    assert facts["status"] == "ready" and facts["model"] == "pvt_b0_seeded.pth" and facts["device"] == "cpu"


def _bomb_png(side: int = 30000) -> bytes:
    """A PNG whose header says side x side pixels (900 MP here) in a few dozen bytes: refused from the header alone."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))  # fmt: skip


@pytest.mark.parametrize("method, path, body, status, words", [
    ("POST", "/v1/remove", b"not a picture at all", 415, "not a picture"),
    ("POST", "/v1/remove", b"", 400, "empty body"),
    ("POST", "/v1/remove?colour=red", "photo", 400, "unknown option 'colour'"),
    ("POST", "/v1/remove?output=rgba&output=mask", "photo", 400, "output given twice"),
    ("POST", "/v1/remove?output=sepia", "photo", 400, "output=sepia: expected one of"),
    ("POST", "/v1/remove?format=gif", "photo", 400, "format=gif: expected one of"),
    ("POST", "/v1/remove?format=jpeg", "photo", 400, "format=jpeg has no transparency: ask for format=png or webp, or an opaque "
                                                 "output (mask, foreground, green, composite, blur, overlay)"),
    ("POST", "/v1/remove?max-size=abc", "photo", 400, "argument --max-size: invalid int value: 'abc'"),
    ("POST", "/v1/remove?square=maybe", "photo", 400, "square=maybe: expected 1 or 0"),
    ("POST", "/v1/remove?output=composite&background=/etc/hostname", "photo", 400, "expected a colour"),
    ("POST", "/v1/remove?output=composite", "photo", 400, "--output composite needs --background"),
    ("POST", "/v1/remove?key-color=red", "photo", 400, "--key-color is only used with --output green"),
    ("POST", "/v1/remove?quality=500&format=jpeg&output=mask", "photo", 400, "--quality must be 1 to 100"),
    ("POST", "/v1/remove", "bomb", 413, "30000x30000 pixels"),
    ("GET", "/v1/remove", None, 405, "GET /v1/remove: use POST"),
    ("DELETE", "/health", None, 405, "use GET"),
    ("GET", "/", None, 404, "no such path /"),
    ("POST", "/v2/remove", "photo", 404, "no such path /v2/remove"),
])  # fmt: skip
def test_bad_requests_get_a_4xx_and_one_json_line(server, photo, method, path, body, status, words):
    data = {"photo": photo.read_bytes(), "bomb": _bomb_png()}.get(body, body) if isinstance(body, str) else body
    got, headers, reply = _request(server, method, path, data)
    message = _one_line_error(got, headers, reply)
    assert got == status and words in message, (got, message)
    assert str(photo.parent) not in message and "birefvid-serve-" not in message  # no server paths in replies
    if status == 405:
        assert headers["allow"] in ("POST", "GET, HEAD")


def test_too_large_a_body_is_refused_before_it_is_read(server):
    # the headers promise 1 GB and no byte of it comes: the reply must not wait for the body
    conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
    try:
        conn.putrequest("POST", "/v1/remove")
        conn.putheader("Content-Length", str(10**9))
        conn.endheaders()
        reply = conn.getresponse()
        status, headers, body = reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()
    assert status == 413 and "--max-bytes" in _one_line_error(status, headers, body)
    assert headers["connection"] == "close"


def test_one_cut_out_at_a_time_a_short_queue_then_503(server, photo):
    """queue=1: with a picture being cut out and one waiting, a third gets 503 with Retry-After; the two then finish."""
    service = server.service
    picture = photo.read_bytes()
    results: list[tuple[int, bytes]] = []
    service._infer.acquire()  # the model is busy: the next requests wait for it
    try:
        threads = [threading.Thread(target=lambda: results.append(_request(server, "POST", "/v1/remove", picture)[::2])) for _ in range(2)]
        for t in threads:
            t.start()
        for _ in range(200):
            if service.admitted == 2:
                break
            threading.Event().wait(0.05)
        assert service.admitted == 2
        status, headers, body = _request(server, "POST", "/v1/remove", picture)
        assert status == 503 and headers["retry-after"] == "2" and "busy" in _one_line_error(status, headers, body)
    finally:
        service._infer.release()
    for t in threads:
        t.join(60)
    assert [s for s, _ in results] == [200, 200] and results[0][1] == results[1][1]  # the same picture, the same cut-out
    _wait_for(lambda: service.admitted == 0, "every place given back")  # given back just after the reply is read


def _serve_cli(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "birefvid", "serve", "--port", "0", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip


def test_cli_cuts_out_tiny_scene_and_a_stop_waits_for_the_reply_being_sent(tmp_path):
    """The command itself, with the shipped tiny model: a held-out generated scene comes back as an RGBA PNG, transparent
    on the background and opaque on the subject. Then SIGTERM while a large cut-out is still going out to a client
    reading slowly: the reply arrives whole before the server exits 0 with a "stopped" line (it counted the request
    done once cut out, and exiting cut the reply off: 2.8 of 20 MB). One server for both: each start loads the model."""
    from birefvid.data import make_clip

    image, mask = next(iter(make_clip(HELD_OUT_SEED, 1, (128, 128))))
    ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    noise = (np.random.default_rng(1).random((1200, 1200, 3)) * 255).astype(np.uint8)
    picture = cv2.imencode(".png", noise)[1].tobytes()
    proc = _serve_cli("--model", "tiny", "--device", "cpu", "--precision", "fp32", "--backend", "torch")
    try:
        line = proc.stdout.readline()
        assert line.startswith("birefvid: serving tiny at http://127.0.0.1:") and "/v1/remove" in line, (line, proc.stderr.read() if not line else "")
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/health")
        assert json.loads(conn.getresponse().read())["model"] == "tiny"
        conn.request("POST", "/v1/remove", body=png.tobytes())
        reply = conn.getresponse()
        body = reply.read()
        conn.close()
        assert reply.status == 200 and reply.getheader("Content-Type") == "image/png"
        rgba = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_UNCHANGED)
        assert rgba.shape == (128, 128, 4)
        kernel = np.ones((9, 9), np.uint8)  # away from the edge, where the matte is soft by design
        inside = cv2.erode((mask > 0.5).astype(np.uint8), kernel) > 0
        outside = cv2.erode((mask < 0.5).astype(np.uint8), kernel) > 0
        assert inside.sum() > 200 and outside.sum() > 200
        assert (rgba[..., 3][inside] == 255).mean() > 0.9 and (rgba[..., 3][outside] == 0).mean() > 0.98

        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow link: the server's write blocks
        s.settimeout(60)
        s.connect(("127.0.0.1", port))
        s.sendall(f"POST /v1/remove?format=tif&bit-depth=16 HTTP/1.1\r\nHost: x\r\nContent-Length: {len(picture)}\r\n\r\n".encode() + picture)
        data = s.recv(1024)  # the reply has begun: the picture is cut out and is being sent
        proc.send_signal(signal.SIGTERM)
        time.sleep(1)  # a server that exits at the signal has exited by now, cutting the reply off
        # then read at full speed (at 4 KiB a window the 12 MB took 9 s): what a server that exited had not yet handed
        # to the kernel (its send buffer holds at most a few MB) never comes, so a short reply still shows it
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        while chunk := s.recv(1 << 20):
            data += chunk
        s.close()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(h for h in head.decode().splitlines() if h.lower().startswith("content-length:")).split(":")[1])
    assert head.startswith(b"HTTP/1.1 200") and length > 8_000_000
    assert len(body) == length
    assert proc.returncode == 0, err
    assert err.strip().splitlines()[-1] == "birefvid: stopped"


def test_a_port_in_use_is_one_line_before_the_model_loads():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # a model that does not exist: its error would come first if the model were loaded before the port is taken
        result = subprocess.run([sys.executable, "-m", "birefvid", "serve", "--port", str(port), "--model", "no-such-model"],
                                capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"birefvid: error: cannot listen on 127.0.0.1:{port}: Address already in use"]


def test_serve_help_imports_nothing_heavy():
    probe = ("import sys\nfrom birefvid.cli import main\ntry:\n    main(['serve', '--help'])\nexcept SystemExit as e:\n    code = e.code\n"
             "print(code, sorted(m for m in ('torch', 'av', 'cv2', 'numpy', 'PIL') if m in sys.modules))")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "--max-bytes" in result.stdout and "reverse proxy" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "0 []"


def test_a_refused_body_does_not_spill_into_the_next_request(server, photo):
    """A POST refused before its body is read (wrong path, busy) closes the connection: on a kept-alive one, the
    picture's bytes were read as the next request line, and the next request got a 400 from http.server."""
    conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
    try:
        conn.request("POST", "/v2/remove", body=photo.read_bytes())
        first = conn.getresponse()
        assert first.status == 404 and "no such path" in json.loads(first.read())["error"]
        conn.request("GET", "/health")  # http.client opens a new connection where the server closed the first
        second = conn.getresponse()
        assert second.status == 200 and json.loads(second.read())["status"] == "ready"
    finally:
        conn.close()


def test_overlapping_requests_leave_pillows_own_pixel_limit_in_place(photo):
    """The header check lifts Pillow's global pixel limit for a moment: requests overlapping could restore it in the
    wrong order and leave it lifted, Pillow's decompression-bomb guard off for every later decode in the server."""
    import sys
    import threading

    from PIL import Image

    from birefvid.serving.picture_type import picture_suffix

    body, limit = photo.read_bytes(), Image.MAX_IMAGE_PIXELS
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch as often as they can, as on a busy server
    try:
        threads = [threading.Thread(target=lambda: [picture_suffix(body, 10**9) for _ in range(300)]) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(switch)
    assert Image.MAX_IMAGE_PIXELS == limit


@pytest.mark.parametrize("path", ["/v1/remove", "/nope", "/health"])
def test_a_head_reply_has_no_body_so_the_next_request_reads_its_own(server, path):
    """HEAD's replies are headers alone whatever the status: a 405's JSON sent after HEAD /v1/remove was read by
    http.client (and browsers, proxies) as the status line of the next reply on the kept-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
    try:
        conn.request("HEAD", path)
        first = conn.getresponse()
        assert first.read() == b"" and int(first.getheader("Content-Length")) > 0
        conn.request("GET", "/health")
        second = conn.getresponse()
        assert second.status == 200 and json.loads(second.read())["status"] == "ready"
    finally:
        conn.close()


def _raw_post(server: CutoutServer, length: str, body: bytes) -> tuple[int, bytes]:
    """The status and body of a POST sent with ``Content-Length: length`` and ``body``, its sending side then closed."""
    import socket

    with socket.create_connection(("127.0.0.1", server.server_port), timeout=30) as s:
        s.sendall(f"POST /v1/remove HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode() + body)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, reply = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), reply


@pytest.mark.parametrize("length", ["-1", "1_0", "+10"])
def test_a_content_length_that_is_not_a_count_of_bytes_is_refused(server, photo, length):
    """``Content-Length: -1`` read the body to the connection's end, past --max-bytes (a 30 MB body sent so was taken
    in whole and cut out); int() also took 1_0 as 10."""
    status, reply = _raw_post(server, length, photo.read_bytes())
    assert status == 400 and json.loads(reply)["error"] == f"Content-Length {length!r} is not a number of bytes"


def test_a_client_hanging_up_is_no_traceback_in_the_servers_log(server, capsys, caplog):
    """A client resetting its connection mid-request printed socketserver's 15-line traceback on the server's stderr."""
    import logging
    import socket
    import time

    caplog.set_level(logging.DEBUG, logger="birefvid.serving")
    s = socket.create_connection(("127.0.0.1", server.server_port), timeout=30)
    s.sendall(b"POST /v1/remove HTTP/1.1\r\nHost: x\r\nContent-Len")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends a reset, as a killed client's
    time.sleep(0.2)
    s.close()
    deadline = time.monotonic() + 10
    while "the client hung up" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "the client hung up" in caplog.text
    assert "Traceback" not in capsys.readouterr().err


def test_control_characters_of_a_request_line_are_escaped_in_the_log(server, caplog):
    """The request log (-v) wrote a request line's ESC and BEL raw to the terminal: a client could clear the
    server's screen or retitle its window (http.server's own log escapes them; ours replaced it)."""
    import logging
    import socket
    import time

    caplog.set_level(logging.INFO, logger="birefvid.serving")
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=30) as s:
        s.sendall(b"GET /health\x1b[2J\x1b]0;owned\x07 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while s.recv(65536):
            pass
    deadline = time.monotonic() + 10
    while "owned" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next(r.getMessage() for r in caplog.records if "owned" in r.getMessage())
    assert "\x1b" not in line and "\x07" not in line
    assert '"GET /health\\x1b[2J\\x1b]0;owned\\x07 HTTP/1.1" 404' in line


@pytest.mark.parametrize("request_head, status, words", [
    (b"OPTIONS /v1/remove HTTP/1.1\r\nHost: x\r\n\r\n", 501, "Unsupported method ('OPTIONS')"),
    (b"GET /health?" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "Request-URI Too Long"),
    (b"GET /health HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(120)) + b"\r\n", 431, "Too many headers"),
])  # fmt: skip
def test_http_servers_own_refusals_are_one_json_line_too(server, request_head, status, words):
    """A too-long URL, too many headers, an OPTIONS (a browser's preflight) got http.server's HTML error page, where
    every refusal is promised as one JSON line."""
    import socket

    with socket.create_connection(("127.0.0.1", server.server_port), timeout=30) as s:
        s.sendall(request_head)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in head.decode().splitlines()[1:])}
    assert int(head.split()[1]) == status and headers["connection"] == "close"
    assert words in _one_line_error(status, headers, body)


@contextlib.contextmanager
def _server_beside(server: CutoutServer, **options) -> Iterator[CutoutServer]:
    """A second server around the module's loaded model, with other limits (``uploads``, ``read_timeout``, ...)."""
    httpd = CutoutServer("127.0.0.1", 0, server.service, **options)
    worker = threading.Thread(target=httpd.serve_forever, daemon=True)
    worker.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def _slow_upload(server: CutoutServer, body: bytes, sent: int, query: str = "") -> socket.socket:
    """A client on a bad network: the headers of a POST of ``body`` and its first ``sent`` bytes, the rest not yet sent."""
    s = socket.create_connection(("127.0.0.1", server.server_port), timeout=60)
    s.sendall(f"POST /v1/remove{query} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body[:sent])
    return s


def _reply_on(s: socket.socket) -> tuple[int, dict, bytes]:
    """The reply read from a socket by http.client's own parser: status, headers (lower-case names), body."""
    reply = http.client.HTTPResponse(s)
    reply.begin()
    return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()


def _wait_for(condition, what: str, seconds: float = 30) -> None:
    """Polls ``condition`` until true; generous, as the server's threads are scheduled late on a loaded machine."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"still not {what} after {seconds} s"
        time.sleep(0.02)


def test_slow_uploads_do_not_hold_the_queue(server, photo):
    """queue=1 (two places): three phones uploading slowly took every place before their bodies came, and a picture
    sent whole meanwhile got 503 while the model was idle. Now it is cut out, and the slow ones too once they arrive."""
    picture = photo.read_bytes()
    slow = [_slow_upload(server, picture, len(picture) // 2) for _ in range(3)]
    try:
        _wait_for(lambda: server.uploading == 3, "three uploads being received")
        status, headers, body = _request(server, "POST", "/v1/remove", picture)
        assert status == 200 and headers["content-type"] == "image/png", body[:200]
        assert json.loads(_request(server, "GET", "/health")[2])["uploading"] == 3
        for s in slow:  # one after another: each a picture ready, with the queue's places free
            s.sendall(picture[len(picture) // 2:])
            assert _reply_on(s)[::2] == (200, body)
    finally:
        for s in slow:
            s.close()
    # the reply is sent from inside the queue's place: it is given back just after the client has read it
    _wait_for(lambda: server.uploading == 0 and server.service.admitted == 0, "every place given back")


def test_uploads_past_the_cap_get_503_and_a_finished_one_frees_its_place(server, photo):
    """Bodies being received are bounded on their own (--uploads): past the cap, a 503 with Retry-After at once,
    before its body is read; an upload that arrives frees its place."""
    picture = photo.read_bytes()
    with _server_beside(server, uploads=2) as capped:
        slow = [_slow_upload(capped, picture, 100) for _ in range(2)]
        try:
            _wait_for(lambda: capped.uploading == 2, "two uploads being received")
            status, headers, body = _request(capped, "POST", "/v1/remove", picture)
            assert status == 503 and headers["retry-after"] == "2" and headers["connection"] == "close"
            assert "2 uploads are being received (--uploads)" in _one_line_error(status, headers, body)
            health = json.loads(_request(capped, "GET", "/health")[2])
            assert (health["uploading"], health["uploads"], health["busy"]) == (2, 2, 0)
            slow[0].sendall(picture[100:])
            assert _reply_on(slow[0])[0] == 200
            assert _request(capped, "POST", "/v1/remove", picture)[0] == 200
        finally:
            for s in slow:
                s.close()


def test_a_stalled_upload_gets_408_and_frees_its_place(server, photo):
    """A client that stops sending mid-body is answered 408 after --read-timeout and its upload place is free again
    (it held the connection 60 s, then got a 500 "internal error" with a traceback in the log)."""
    picture = photo.read_bytes()
    with _server_beside(server, uploads=1, read_timeout=1) as strict:
        stalled = _slow_upload(strict, picture, len(picture) // 2)
        try:
            status, headers, body = _reply_on(stalled)  # the socket waits up to 60 s: a generous bound on a 1 s timeout
        finally:
            stalled.close()
        assert status == 408 and headers["connection"] == "close"
        assert _one_line_error(status, headers, body) == "nothing of the body came for 1 s (--read-timeout)"
        assert strict.uploading == 0 and _request(strict, "POST", "/v1/remove", picture)[0] == 200


def test_a_trickling_upload_within_the_read_timeout_is_received(server, photo):
    """--read-timeout is the longest wait for the next bytes, not for the whole body: a phone sending a piece every
    fraction of a second for longer than the timeout in all still gets its cut-out (as nginx's client_body_timeout).
    The minimum upload rate is off here: this small picture at this pace is far below the default's 50 KiB/s."""
    picture = photo.read_bytes()
    pieces = [picture[i : i + len(picture) // 8 + 1] for i in range(0, len(picture), len(picture) // 8 + 1)]
    with _server_beside(server, read_timeout=2, min_upload_rate=0) as strict:
        s = _slow_upload(strict, picture, 0)
        try:
            started = time.monotonic()
            for piece in pieces:
                time.sleep(0.4)
                s.sendall(piece)
            assert time.monotonic() - started > 2  # the body took longer than the timeout in all
            assert _reply_on(s)[0] == 200
        finally:
            s.close()


def _drip_until_answered(s: socket.socket, data: bytes, every: float, seconds: float = 60) -> Optional[float]:
    """Sends ``data`` a byte every ``every`` s (slowloris) until the server answers; the seconds that took, or None when
    it had not answered after ``seconds`` (generous: the server's threads are scheduled late on a loaded machine)."""
    import select

    started = time.monotonic()
    for byte in data:
        if select.select([s], [], [], every)[0]:
            return time.monotonic() - started
        if time.monotonic() - started > seconds:
            return None
        with contextlib.suppress(OSError):  # the server may have closed its end already
            s.sendall(bytes([byte]))
    return None


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_client_sending_a_byte_now_and_then_is_cut_off_and_frees_its_place(server, photo, framing):
    """Slowloris: a byte every 0.3 s, each well within --read-timeout, held an upload place for as long as the client
    liked (here the picture would take half an hour). Past the grace (--read-timeout) the body must keep up
    --min-upload-rate: it gets 408 and its place is free again, whether it declared its length or came chunked."""
    picture = photo.read_bytes()
    with _server_beside(server, uploads=1, read_timeout=3, min_upload_rate=1000) as strict:
        s = socket.create_connection(("127.0.0.1", strict.server_port), timeout=60)
        try:
            framed = f"Content-Length: {len(picture)}" if framing == "content-length" else "Transfer-Encoding: chunked"
            s.sendall(f"POST /v1/remove HTTP/1.1\r\nHost: x\r\n{framed}\r\n\r\n".encode())
            body = picture if framing == "content-length" else _chunked(picture, 64)
            took = _drip_until_answered(s, body, every=0.3)
            assert took is not None, "no answer to a client sending a byte every 0.3 s after 60 s"
            status, headers, reply = _reply_on(s)
        finally:
            s.close()
        assert status == 408 and headers["connection"] == "close"
        assert _one_line_error(status, headers, reply).startswith("the body came slower than 1,000 bytes/s (--min-upload-rate); cut off after ")
        _wait_for(lambda: strict.uploading == 0, "the upload place given back")
        assert _request(strict, "POST", "/v1/remove", picture)[0] == 200


def test_an_upload_at_a_normal_rate_taking_longer_than_the_grace_is_received(server, photo):
    """The same server and picture as the slowloris above, sent in pieces at about 1.5x --min-upload-rate: it takes
    longer than the grace (--read-timeout) in all, and is received: the deadline grows with the bytes sent."""
    picture = photo.read_bytes()
    piece = len(picture) // 8 + 1
    with _server_beside(server, uploads=1, read_timeout=3, min_upload_rate=1000) as strict:
        s = _slow_upload(strict, picture, 0)
        try:
            started = time.monotonic()
            for at in range(0, len(picture), piece):  # each piece buys 0.77 s: a client paused 2 s more still passes
                time.sleep(0.5)
                s.sendall(picture[at : at + piece])
            assert time.monotonic() - started > 3  # longer than the grace in all
            assert _reply_on(s)[0] == 200
        finally:
            s.close()


def _chunked(body: bytes, size: int) -> bytes:
    """``body`` framed as Transfer-Encoding: chunked in pieces of ``size`` bytes, with its last chunk."""
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def test_a_chunked_upload_is_cut_out_as_a_whole_one(server, photo):
    """``Transfer-Encoding: chunked`` (urllib for a file of unknown size, requests for a generator, nginx with
    proxy_request_buffering off) got 411; it is read, and cut out as the same picture sent with a Content-Length."""
    import urllib.request

    picture = photo.read_bytes()
    whole = _request(server, "POST", "/v1/remove?output=mask", picture)
    pieces = iter([picture[:1000], picture[1000:1001], picture[1001:]])
    request = urllib.request.Request(f"http://127.0.0.1:{server.server_port}/v1/remove?output=mask", data=pieces, method="POST")
    with urllib.request.urlopen(request, timeout=60) as reply:  # urllib sends an iterable chunked
        assert reply.status == 200 and reply.headers["Content-Type"] == "image/png"
        assert reply.read() == whole[2]
    # and multipart sent chunked, on a kept-alive connection that then serves another request
    boundary = "----birefvidtest"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.png\"\r\n\r\n").encode() + picture + \
        f"\r\n--{boundary}--\r\n".encode()  # fmt: skip
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=60) as s:
        s.sendall(f"POST /v1/remove?output=mask HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode() + _chunked(form, 4096))  # fmt: skip
        assert _reply_on(s)[::2] == (200, whole[2])
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _reply_on(s)[0] == 200


def test_a_chunked_upload_over_max_bytes_is_refused_as_it_passes(server, photo):
    """--max-bytes holds for a chunked body: 413 as soon as the chunks announced pass it, the chunk that would pass it
    never read (here it is never sent: the reply must not wait for it)."""
    picture = photo.read_bytes()
    with _server_beside(server, max_bytes=len(picture) - 1) as small:
        with socket.create_connection(("127.0.0.1", small.server_port), timeout=60) as s:
            s.sendall(b"POST /v1/remove HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      + b"%x\r\n%s\r\n" % (1000, picture[:1000]) + b"%x\r\n" % (len(picture) - 1000))  # fmt: skip
            status, headers, body = _reply_on(s)
        assert status == 413 and headers["connection"] == "close"
        assert _one_line_error(status, headers, body) == f"the chunked body passes the server's {len(picture) - 1:,} bytes (--max-bytes)"
        assert small.uploading == 0


@pytest.mark.parametrize("head, body, status, words", [
    (b"Transfer-Encoding: chunked", b"zz\r\nhello\r\n0\r\n\r\n", 400, "a chunk size 'zz' is not hex digits"),
    (b"Transfer-Encoding: chunked", b"0x5\r\nhello\r\n0\r\n\r\n", 400, "a chunk size '0x5' is not hex digits"),
    (b"Transfer-Encoding: chunked", b"3\r\nhello\r\n0\r\n\r\n", 400, "a chunk is longer than its size says"),
    (b"Transfer-Encoding: chunked", b"5\r\nhello\r\n", 400, "the chunked body ended early"),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 5", b"hello", 400, "both Transfer-Encoding and Content-Length"),
    (b"Content-Length: 5\r\nContent-Length: 6", b"hello!", 400, "Content-Lengths 5, 6 disagree"),
    (b"Transfer-Encoding: gzip, chunked", b"0\r\n\r\n", 501, "Transfer-Encoding 'gzip, chunked' is not read"),
])  # fmt: skip
def test_a_malformed_body_framing_is_refused(server, head, body, status, words):
    """Framing a proxy and this server could read differently (request smuggling) is refused, and the connection
    closed, rather than guessed at."""
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=60) as s:
        s.sendall(b"POST /v1/remove HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n\r\n" + body)
        s.shutdown(socket.SHUT_WR)  # a body cut off ends here
        got, headers, reply = _reply_on(s)
    assert got == status and headers["connection"] == "close"
    assert words in _one_line_error(got, headers, reply)


@pytest.mark.parametrize("path, options, status, words", [
    ("/v1/remove", {"max_bytes": 1000}, 413, "(--max-bytes)"),
    ("/v2/remove", {}, 404, "no such path /v2/remove"),
])  # fmt: skip
def test_a_client_still_sending_a_refused_body_gets_the_refusal(server, path, options, status, words):
    """A body refused unread (over --max-bytes, a wrong path) while the client was still sending it: the server closed
    on the unread bytes, the client got a reset, and http.client, urllib and requests said "broken pipe" instead of
    the 413. Its bytes are now read and dropped for a while (nginx's lingering close), and the refusal arrives."""
    body = b"x" * (8 << 20)  # more than loopback's socket buffers hold: the client is still sending when refused
    with _server_beside(server, **options) as httpd:
        conn = http.client.HTTPConnection("127.0.0.1", httpd.server_port, timeout=60)
        try:
            conn.request("POST", path, body=body)
            reply = conn.getresponse()
            assert reply.status == status and words in json.loads(reply.read())["error"]
        finally:
            conn.close()


def _head_on(s: socket.socket) -> bytes:
    """The bytes the server sent up to the first blank line: one status line and its headers."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(1)
        assert chunk, data
        data += chunk
    return data


def test_expect_100_continue_is_answered_only_when_the_body_is_wanted(server, photo):
    """curl sends ``Expect: 100-continue`` for a body over 1 MiB and waits: http.server said "100 Continue" at once,
    and a body over --max-bytes was sent whole to be refused. The refusal now comes instead; a picture that is
    wanted still gets its "100 Continue", then its cut-out."""
    picture = photo.read_bytes()
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=60) as s:
        s.sendall(b"POST /v1/remove HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % 10**9)
        assert _head_on(s).startswith(b"HTTP/1.1 413 ")
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=60) as s:
        s.sendall(b"POST /v1/remove HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(picture))
        assert _head_on(s) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(picture)
        assert _reply_on(s)[0] == 200


def test_a_long_reply_to_a_slow_reader_arrives_whole(server):
    """--read-timeout bounds each wait to send a piece of the reply, not the whole reply: sent in one sendall, whose
    timeout is for all it sends, a 11 MB cut-out read by a phone that never paused was cut off after the timeout."""
    noise = (np.random.default_rng(1).random((1200, 1200, 3)) * 255).astype(np.uint8)
    picture = cv2.imencode(".png", noise)[1].tobytes()
    with _server_beside(server, read_timeout=2) as strict:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow link: the server's sends wait on the reader
        s.settimeout(60)
        s.connect(("127.0.0.1", strict.server_port))
        try:
            s.sendall(b"POST /v1/remove?format=tif&bit-depth=16 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(picture) + picture)
            reply = s.makefile("rb", buffering=0)  # unbuffered: each read is one recv of at most 4 KiB
            head = b"".join(iter(reply.readline, b"\r\n"))
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            body, started = bytearray(), time.monotonic()
            while len(body) < length and (chunk := reply.read(min(4096, length - len(body)))):
                body += chunk  # ~4 MB/s: at least 2.7 s for the reply (a sleep is never shorter), each 256 KiB piece read in ~0.07 s
                time.sleep(0.001)
            took = time.monotonic() - started
        finally:
            s.close()
    assert head.startswith(b"HTTP/1.1 200") and length > 8_000_000
    assert len(body) == length
    assert took > 2  # the reply took longer than the timeout in all


def _form(*fields: tuple[str, bytes], boundary: str = "----birefvid7MA4YWxkTrZu0gW", preamble: bytes = b"") -> bytes:
    """A multipart/form-data body with ``fields`` (name, bytes), as a browser's FormData or curl -F sends it."""
    parts = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.bin\"\r\n"
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n" for name, data in fields)  # fmt: skip
    return preamble + parts + f"--{boundary}--\r\n".encode()


def test_a_large_multipart_upload_takes_about_its_own_size_in_memory():
    """The form of a 20 MB photo was parsed by email's whole-message parser: 213 MiB at its peak and a second of CPU,
    per request, in up to --queue + 1 requests at once, where the memory bound counts each request as its body."""
    import tracemalloc

    from birefvid.serving.multipart import multipart_file

    photo_bytes = np.random.default_rng(2).integers(0, 256, 20 << 20, dtype=np.uint8).tobytes()
    # the field among others (a shop's form sends a caption and a size beside it), after a preamble, a quoted boundary
    body = _form(("caption", b"--not the boundary\r\n"), ("file", photo_bytes), ("size", b"l"), boundary="a:b c", preamble=b"ignored\r\n")
    tracemalloc.start()
    try:
        got = multipart_file('multipart/form-data; boundary="a:b c"', body)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == photo_bytes
    assert peak < 2 * len(photo_bytes)  # the field's bytes, copied out once


@pytest.mark.parametrize("content_type, body, words", [
    ("multipart/form-data", _form(("file", b"x")), "without a boundary"),
    ("multipart/form-data; boundary=b", _form(("file", b"x"), boundary="b")[:-10], "ended inside a part"),
])  # fmt: skip
def test_a_malformed_multipart_form_is_a_400(server, content_type, body, words):
    """A form without its boundary parameter, or cut off inside its part, says so (it said "without parts", or the
    picture was taken as empty)."""
    status, headers, reply = _request(server, "POST", "/v1/remove", body, {"Content-Type": content_type})
    assert status == 400 and words in _one_line_error(status, headers, reply)



@pytest.mark.parametrize("option, line", [
    (["--uploads", "0"], "--uploads must be 1 or more, got 0"),
    (["--read-timeout", "0"], "--read-timeout must be a number of seconds above 0, got 0"),
    (["--read-timeout", "nan"], "--read-timeout must be a number of seconds above 0, got nan"),
    (["--min-upload-rate", "-1"], "--min-upload-rate must be a number of bytes per second, 0 or more, got -1"),
    (["--min-upload-rate", "nan"], "--min-upload-rate must be a number of bytes per second, 0 or more, got nan"),
])  # fmt: skip
def test_upload_limits_out_of_range_are_one_line_before_the_model_loads(option, line):
    """No upload place, or a timeout of 0 (every read fails at once) or nan (none ever does), would serve nothing."""
    result = subprocess.run([sys.executable, "-m", "birefvid", "serve", "--port", "0", "--model", "no-such-model", *option],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [f"birefvid: error: {line}"]


def test_a_reply_cut_off_by_the_read_timeout_ends_the_connection(server):
    """A reply whose client read nothing for --read-timeout is cut off, and the connection must then close: the server
    went on to read the next request on it, and a client that had sent one (pipelined) read that request's reply as
    the rest of the cut-out's body."""
    noise = (np.random.default_rng(2).random((800, 800, 3)) * 255).astype(np.uint8)  # ~1.9 MB of overlay PNG: no buffer holds it
    picture = cv2.imencode(".png", noise)[1].tobytes()
    post = b"POST /v1/remove?output=overlay HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(picture) + picture
    whole = _request(server, "POST", "/v1/remove?output=overlay", picture)[2]
    with _server_beside(server, read_timeout=2) as strict:
        strict.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)  # inherited by its connections: sends wait early
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(60)
        s.connect(("127.0.0.1", strict.server_port))
        try:
            s.sendall(post + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = s.makefile("rb", buffering=0)
            head = b"".join(iter(reply.readline, b"\r\n"))
            # past the timeout, so the cut-out is cut off; under twice it, so a reply to the next request would still go out
            time.sleep(3)
            rest = bytearray()
            with contextlib.suppress(ConnectionError):
                while chunk := reply.read(65536):
                    rest += chunk
        finally:
            s.close()
    assert head.startswith(b"HTTP/1.1 200") and int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]) == len(whole)
    assert len(rest) < len(whole)  # cut off ...
    assert rest == whole[: len(rest)]  # ... and nothing after it: no other reply read as the body's rest


@pytest.mark.parametrize("bad_line", [b"Content-Length : 33", b"X Forwarded: 1\r\nContent-Length: 33", b"X\x01Y: 1\r\nContent-Length: 33"])
def test_a_header_line_that_is_no_header_is_refused_not_skipped_with_those_after_it(server, bad_line):
    """http.server's header parser stops at a line that is no "name: value" (a space before the colon, a control
    character in the name) and drops it and every line after it, a Content-Length among them: the body was then read
    as the next request, which a proxy that kept the line had passed as a body (request smuggling; RFC 9112 5.1 says
    400). Here the body is a GET that must not be answered."""
    smuggled = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    assert len(smuggled) == 33
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=60) as s:
        s.sendall(b"POST /v1/remove HTTP/1.1\r\nHost: x\r\n" + bad_line + b"\r\n\r\n" + smuggled)
        status, headers, body = _reply_on(s)
        assert status == 400 and headers["connection"] == "close"
        assert _one_line_error(status, headers, body).startswith("a header line that is no header")
        assert s.recv(65536) == b""  # and nothing more: the smuggled GET got no reply


def test_a_form_with_bare_lf_line_breaks_is_read(server, photo):
    """A form written by Python's email package (``as_bytes()`` breaks lines with LF alone, and base64-encodes the
    file) was read by email's parser before the boundary splitter replaced it, which then took only CRLF and said the
    form "ended inside a part"; its file is the same picture as sent raw."""
    from email.mime.application import MIMEApplication
    from email.mime.multipart import MIMEMultipart

    picture = photo.read_bytes()
    form = MIMEMultipart("form-data")
    field = MIMEApplication(picture, "png")
    field.add_header("Content-Disposition", "form-data", name="file", filename="photo.png")
    form.attach(field)
    head, _, body = form.as_bytes().partition(b"\n\n")
    assert b"\r\n" not in body[:200] and form.get_boundary().encode() in body  # LF alone, as email writes it
    raw = _request(server, "POST", "/v1/remove?output=mask", picture)
    status, _, reply = _request(server, "POST", "/v1/remove?output=mask", body, {"Content-Type": form["Content-Type"]})
    assert (status, reply) == (200, raw[2])


@pytest.mark.parametrize("head, status", [
    (b"POST /v1/remove HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(120)), 431),  # over http.server's 100
    (b"OPTIONS /v1/remove HTTP/1.1\r\nHost: x\r\n", 501),
])  # fmt: skip
def test_http_servers_own_refusals_reach_a_client_still_sending_its_body(server, head, status):
    """http.server's own refusals (over 100 headers, a method it has no handler for) closed on the unread body, which
    sends a reset: a client sending its body before reading (http.client, requests) got "broken pipe" instead of the
    refusal, as ours did before their lingering close."""
    body = b"x" * 8_000_000  # more than loopback's socket buffers hold: the client is still sending when refused
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=60) as s:
        s.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        got, headers, reply = _reply_on(s)
    assert got == status and headers["connection"] == "close"
    assert _one_line_error(got, headers, reply)


KEY = "kX3v9Qm2-Zt_7bLp4Rw8sYc1"  # the form secrets.token_urlsafe makes


@pytest.mark.parametrize("shown, words, invalid", [
    ({}, "this server needs its API key: send Authorization: Bearer KEY (or X-API-Key: KEY)", False),
    ({"Authorization": "Bearer " + KEY[:-1]}, "the API key sent is not this server's", True),
    ({"Authorization": "Bearer " + KEY + "x"}, "the API key sent is not this server's", True),
    ({"X-API-Key": KEY.lower()}, "the API key sent is not this server's", True),
    ({"Authorization": "Basic " + __import__("base64").b64encode(b":wrong-key-of-some-length").decode()}, "the API key sent is not this server's", True),
])  # fmt: skip
def test_without_the_key_a_request_gets_401_before_its_body_is_read(server, photo, shown, words, invalid):
    """With an API key, a POST without it (or with another) is answered 401 at once, from its headers: it is never told
    to send its body (Expect: 100-continue), takes no upload place (the one there is serves the next client), and the
    reply says how to authenticate (WWW-Authenticate: Bearer, as RFC 6750)."""
    picture = photo.read_bytes()
    with _server_beside(server, uploads=1, api_key=KEY) as guarded:
        s = socket.create_connection(("127.0.0.1", guarded.server_port), timeout=60)
        try:
            head = "".join(f"{name}: {value}\r\n" for name, value in shown.items())
            s.sendall(f"POST /v1/remove HTTP/1.1\r\nHost: x\r\nContent-Length: {len(picture)}\r\nExpect: 100-continue\r\n{head}\r\n".encode())
            status, headers, body = _reply_on(s)  # no 100 Continue before it: http.client's parser would skip one and wait
            assert guarded.uploading == 0
            assert _request(guarded, "POST", "/v1/remove", picture, {"Authorization": f"Bearer {KEY}"})[0] == 200  # its place free
        finally:
            s.close()
    assert status == 401 and headers["connection"] == "close"
    assert headers["www-authenticate"] == 'Bearer realm="birefvid serve"' + (', error="invalid_token"' if invalid else "")
    assert _one_line_error(status, headers, body) == words


@pytest.mark.parametrize("shown", [
    {"Authorization": f"Bearer {KEY}"},
    {"Authorization": f"bearer  {KEY} "},
    {"X-API-Key": KEY},
    {"Authorization": "Basic " + __import__("base64").b64encode(f":{KEY}".encode()).decode()},  # curl -u :KEY, requests' auth=("", KEY)
])  # fmt: skip
def test_the_right_key_gets_the_cut_out(server, photo, shown):
    picture = photo.read_bytes()
    with _server_beside(server, api_key=KEY) as guarded:
        status, headers, body = _request(guarded, "POST", "/v1/remove", picture, shown)
        assert (status, body) == (200, _request(server, "POST", "/v1/remove", picture)[2])


@pytest.mark.parametrize("bad_line", [f"Authorization : Bearer {KEY}", f"X-API-Key\t: {KEY}", f"Authorization\x01: Bearer {KEY}"])
def test_a_malformed_header_line_holding_the_key_is_refused_without_echoing_it(server, caplog, bad_line):
    """A header line that is no "name: value" (a space or a tab before the colon, a control character in the name) is
    a 400 naming the line; it named it whole, so a client's key in it went into the server's log at -v, and into the
    reply, which proxies and client logs keep. The name is enough to find the line: the value is not repeated."""
    caplog.set_level(logging.INFO, logger="birefvid.serving")
    with _server_beside(server, api_key=KEY) as guarded, socket.create_connection(("127.0.0.1", guarded.server_port), timeout=60) as s:
        s.sendall(f"GET /v1/remove HTTP/1.1\r\nHost: x\r\n{bad_line}\r\n\r\n".encode())
        status, headers, body = _reply_on(s)
    said = _one_line_error(status, headers, body)
    assert status == 400 and said.startswith("a header line that is no header") and repr(bad_line.partition(":")[0]) in said
    assert KEY not in said and KEY[:8] not in body.decode()
    assert "no header" in caplog.text and KEY[:8] not in caplog.text


def test_health_stays_open_and_other_paths_ask_for_the_key(server):
    """A load balancer's probe has no key; a client without it learns no other path (401, not 404)."""
    with _server_beside(server, api_key=KEY) as guarded:
        status, headers, body = _request(guarded, "GET", "/health")
        assert status == 200 and json.loads(body)["status"] == "ready"
        assert _request(guarded, "HEAD", "/health")[0] == 200
        assert _request(guarded, "GET", "/admin")[0] == 401
        assert _request(guarded, "GET", "/admin", headers={"X-API-Key": KEY})[0] == 404


@pytest.mark.parametrize("option, environ, line", [
    (["--api-key-file", "{tmp}/missing"], {}, "cannot read the API key from {tmp}/missing: No such file or directory"),
    (["--api-key-file", "{tmp}/short"], {}, "the API key in {tmp}/short must be 16 to 256 letters, digits or . _ ~ + / - "
                                            "(make one: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"),
    (["--api-key-file", "{tmp}/empty"], {}, "{tmp}/empty holds no API key: 16 to 256 letters, digits or . _ ~ + / - "
                                            "(make one: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"),
    ([], {"BIREFVID_API_KEY": ""}, "$BIREFVID_API_KEY holds no API key: 16 to 256 letters, digits or . _ ~ + / - "
                                   "(make one: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"),
    ([], {"BIREFVID_API_KEY": "a key with spaces in it"}, "the API key in $BIREFVID_API_KEY must be 16 to 256 letters, digits or "
                                                          ". _ ~ + / - (make one: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"),
    (["--api-key-file", "{tmp}/good"], {"BIREFVID_API_KEY": KEY}, "give the API key one way: --api-key-file or $BIREFVID_API_KEY, not both"),
])  # fmt: skip
def test_a_bad_api_key_is_one_line_before_the_model_loads(tmp_path, option, environ, line):
    """A missing file, a key too short to resist guessing, none at all where one was meant (a deployment whose secret did
    not arrive must not serve everyone), two: one line, exit 2, before the model (which does not exist here) loads."""
    (tmp_path / "short").write_text("hunter2\n")
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "good").write_text(KEY + "\n")
    env = {k: v for k, v in os.environ.items() if k != "BIREFVID_API_KEY"} | environ
    argv = [a.replace("{tmp}", str(tmp_path)) for a in option]
    result = subprocess.run([sys.executable, "-m", "birefvid", "serve", "--port", "0", "--model", "no-such-model", *argv],
                            capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [f"birefvid: error: {line.replace('{tmp}', str(tmp_path))}"]


def test_cli_asks_curl_and_requests_for_the_key_from_a_file(tmp_path, photo):
    """The command itself with --api-key-file, and the clients users have: curl and requests without the key get 401
    (curl's -f fails, requests' raise_for_status raises), with it their cut-out; the key is never in the ready line."""
    import shutil

    import requests

    (tmp_path / "key").write_text(KEY + "\n")
    proc = _serve_cli("--api-key-file", str(tmp_path / "key"), "--model", "tiny", "--device", "cpu", "--precision", "fp32",
                      "--backend", "torch", "--resolution", "64")  # fmt: skip
    try:
        line = proc.stdout.readline()
        assert "(POST a picture with the API key; GET /health)" in line and KEY not in line, (line, proc.stderr.read() if not line else "")
        url = line.split(" at ")[1].split(" ")[0]
        refused = requests.post(url, data=photo.read_bytes(), timeout=60)
        assert refused.status_code == 401 and refused.json() == {"error": "this server needs its API key: send Authorization: "
                                                                          "Bearer KEY (or X-API-Key: KEY)"}  # fmt: skip
        cut = requests.post(url, data=photo.read_bytes(), headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
        assert cut.status_code == 200 and cut.headers["Content-Type"] == "image/png"
        if shutil.which("curl"):
            common = ["curl", "-sS", "-f", "--data-binary", f"@{photo}", "-o", str(tmp_path / "out.png"), url]
            failed = subprocess.run(common, capture_output=True, text=True, timeout=60)
            assert failed.returncode == 22 and "401" in failed.stderr
            subprocess.run([*common, "-H", f"X-API-Key: {KEY}"], check=True, timeout=60)
            assert (tmp_path / "out.png").read_bytes() == cut.content
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0


@pytest.mark.parametrize("dripped", [
    b"GET /health?" + b"a" * 400 + b" HTTP/1.1\r\n\r\n",  # the request line
    b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 400 + b"\r\n\r\n",  # a header
])  # fmt: skip
def test_a_client_dripping_its_request_head_is_cut_off_while_others_are_served(server, dripped):
    """A byte every 0.3 s, each well within --read-timeout, held a thread and a connection as long as the client liked
    (nginx's client_header_timeout, Apache's RequestReadTimeout header=): the request line and headers must all come
    within --read-timeout, else 408 and the connection closes; a request sent whole meanwhile is answered."""
    with _server_beside(server, read_timeout=2) as strict:
        s = socket.create_connection(("127.0.0.1", strict.server_port), timeout=60)
        try:
            answered = threading.Event()
            health: list[int] = []
            threading.Thread(target=lambda: (health.append(_request(strict, "GET", "/health")[0]), answered.set()), daemon=True).start()
            took = _drip_until_answered(s, dripped, every=0.3)  # 400 bytes would take 2 minutes
            assert took is not None, "no answer to a client dripping its request head after 60 s"
            status, headers, reply = _reply_on(s)
        finally:
            s.close()
        assert status == 408 and headers["connection"] == "close"
        assert _one_line_error(status, headers, reply) == "the request line and headers did not all come within 2 s (--read-timeout)"
        assert answered.wait(30) and health == [200]
        _wait_for(lambda: strict.connections == 0, "the connection's place given back")


def _idle_connections(server: CutoutServer, count: int) -> list[socket.socket]:
    """``count`` clients connected that send nothing, once the server holds each."""
    idle = [socket.create_connection(("127.0.0.1", server.server_port), timeout=60) for _ in range(count)]
    _wait_for(lambda: server.connections == count, f"{count} connections held")
    return idle


def test_past_max_connections_a_connection_gets_503_and_health_still_answers(server, photo):
    """With no cap, a few hundred idle or slow clients took a thread and a file descriptor each until the process had
    none left, and nobody was answered, /health included. Past --max-connections a connection gets a 503 with
    Retry-After at once (no thread started for it) while GET /health is still answered; a connection that closes
    frees its place for the next request."""
    picture = photo.read_bytes()
    with _server_beside(server, max_connections=4, read_timeout=60) as capped:  # the idle ones are held the whole test
        idle = _idle_connections(capped, 4)
        try:
            started = time.monotonic()
            status, headers, body = _request(capped, "POST", "/v1/remove", picture)
            took = time.monotonic() - started
            assert status == 503 and headers["retry-after"] == "2" and headers["connection"] == "close"
            assert _one_line_error(status, headers, body) == "busy: 4 connections are open (--max-connections); retry shortly"
            assert took < 20, f"the 503 took {took:.1f} s: it waited on a held connection, not answered at once"  # idle ones: 60 s
            status, headers, body = _request(capped, "GET", "/health")
            assert status == 200 and headers["connection"] == "close"
            health = json.loads(body)
            assert health["status"] == "ready" and (health["connections"], health["max_connections"]) == (4, 4)
            assert _request(capped, "HEAD", "/health")[::2] == (200, b"")
            assert threading.active_count() < 50  # the refused ones started no thread each (a handful of the test's own)
            idle[0].close()
            _wait_for(lambda: capped.connections == 3, "the closed connection's place given back")
            status, headers, body = _request(capped, "POST", "/v1/remove", picture)
            assert status == 200 and headers["content-type"] == "image/png"
        finally:
            for s in idle:
                s.close()


def test_an_idle_kept_alive_connection_is_closed_after_keep_alive(server):
    """A connection idle between requests was held for --read-timeout (30 s), so idle keep-alive connections (a browser
    keeps several) filled the connection places; it is closed after --keep-alive, while one that sends its next
    request in time is answered on the same connection."""
    with _server_beside(server, keep_alive=1, read_timeout=30) as strict:
        s = socket.create_connection(("127.0.0.1", strict.server_port), timeout=60)
        try:
            for _ in range(2):  # two requests on one connection: kept alive between them
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                status, headers, _ = _reply_on(s)
                assert status == 200 and headers.get("connection") != "close"
            started = time.monotonic()
            assert s.recv(1024) == b""  # closed by the server, without a word
            took = time.monotonic() - started
        finally:
            s.close()
        assert took < 15, f"an idle connection was held {took:.1f} s, past --keep-alive 1 (the old bound: --read-timeout 30)"
        _wait_for(lambda: strict.connections == 0, "the connection's place given back")


@pytest.mark.parametrize("option, line", [
    (["--max-connections", "0"], "--max-connections must be 1 or more, got 0"),
    (["--keep-alive", "0"], "--keep-alive must be a number of seconds above 0, got 0"),
    (["--keep-alive", "nan"], "--keep-alive must be a number of seconds above 0, got nan"),
    (["--max-connections", "100000000"], "--max-connections 100000000 needs 100000128 open files, more than this process may have"),
])  # fmt: skip
def test_connection_limits_out_of_range_are_one_line_before_the_model_loads(option, line):
    """No connection place, no idle time, or more connections than the process may open files, would serve nothing."""
    result = subprocess.run([sys.executable, "-m", "birefvid", "serve", "--port", "0", "--model", "no-such-model", *option],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"birefvid: error: {line}")


def test_health_is_answered_past_the_cap_even_with_the_overflow_full(server, monkeypatch):
    """Connections past --max-connections are held a moment each, on one thread, to read their request (64 at most):
    a flood of them filled those places and a load balancer's probe got 503 as if the server were down. The oldest
    makes room instead (it gets its 503 at once), so a probe that sends its request at once is answered."""
    import birefvid.serving.connections as connections

    monkeypatch.setattr(connections, "OVERFLOW_HELD", 4)  # 4 places past the cap, not 64: fewer sockets
    monkeypatch.setattr(connections, "OVERFLOW_HEAD_S", 60)  # the flood's connections, sending nothing, held the whole test
    with _server_beside(server, max_connections=1, read_timeout=60) as capped:
        idle = _idle_connections(capped, 1)
        try:
            idle += [socket.create_connection(("127.0.0.1", capped.server_port), timeout=60) for _ in range(4)]
            _wait_for(lambda: capped._overflow.held == 4, "4 connections held past the cap")
            status, headers, body = _request(capped, "GET", "/health")
            assert status == 200 and json.loads(body)["connections"] == 1
            status, headers, body = _reply_on(idle[1])  # the oldest past the cap, pushed out to make room
            assert status == 503 and "(--max-connections)" in _one_line_error(status, headers, body)
        finally:
            for s in idle:
                s.close()


def test_a_probe_past_the_cap_is_answered_while_the_overflow_thread_is_behind(server, monkeypatch):
    """The overflow's thread scheduled late (a loaded machine) left OVERFLOW_HELD connections waiting for it, and the
    next one, a load balancer's probe sending its request at once, got 503 on the spot: the oldest waiting makes room
    instead, as a held one does. The thread is held back here until the probe has come, as a busy CPU holds it."""
    import select

    import birefvid.serving.connections as connections

    scheduled = threading.Event()
    run = connections.Overflow._run

    def run_late(overflow: connections.Overflow) -> None:
        scheduled.wait(60)
        run(overflow)

    monkeypatch.setattr(connections.Overflow, "_run", run_late)
    monkeypatch.setattr(connections, "OVERFLOW_HELD", 4)
    monkeypatch.setattr(connections, "OVERFLOW_HEAD_S", 60)  # the flood's connections, sending nothing, held the whole test
    with _server_beside(server, max_connections=1, read_timeout=60) as capped:
        idle = _idle_connections(capped, 1)
        try:
            idle += [socket.create_connection(("127.0.0.1", capped.server_port), timeout=60) for _ in range(4)]
            _wait_for(lambda: capped._overflow.held == 4, "4 connections taken past the cap")
            probe = socket.create_connection(("127.0.0.1", capped.server_port), timeout=60)
            idle.append(probe)
            probe.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            answered, _, _ = select.select([idle[1], probe], [], [], 60)  # one is answered before the thread runs
            assert answered, "neither the probe nor the oldest connection was answered in 60 s"
            scheduled.set()
            status, headers, body = _reply_on(probe)
            assert status == 200 and json.loads(body)["connections"] == 1, body
            status, headers, body = _reply_on(idle[1])  # the oldest past the cap, pushed out before the thread saw it
            assert status == 503 and "(--max-connections)" in _one_line_error(status, headers, body)
        finally:
            scheduled.set()
            for s in idle:
                s.close()


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_a_reply_keeps_the_photos_keywords_and_caption_less_its_position(server, tmp_path, fmt):
    """A shop's asset system posting a tagged product shot gets the tags back in the cut-out; ?no-exif drops them."""
    import io
    import xml.etree.ElementTree as ET

    from PIL import Image
    from test_image_xmp import CAPTION, KEYWORDS, NS, _packet, _photo, _values

    _photo(tmp_path / "tagged.jpg", _packet())
    replies = [_request(server, "POST", f"/v1/remove?format={fmt}{more}", (tmp_path / "tagged.jpg").read_bytes(),
                        {"Content-Type": "image/jpeg"}) for more in ("", "&no-exif")]  # fmt: skip
    assert [status for status, _, _ in replies] == [200, 200]
    with Image.open(io.BytesIO(replies[0][2])) as tagged, Image.open(io.BytesIO(replies[1][2])) as shop:
        root = ET.fromstring(tagged.info["xmp"])
        assert "xmp" not in shop.info
    assert _values(root, "dc:subject") == KEYWORDS and _values(root, "dc:description") == [CAPTION]
    assert not [el for el in root.iter() for name in (el.tag, *el.attrib) if name.startswith(f"{{{NS['exif']}}}GPS")]


def test_the_model_out_of_memory_is_503_to_retry_not_the_requests_fault(photo, caplog):
    """A server whose device runs out of memory on a picture (another process took the GPU's) answered 400, a bad
    request a client must not send again, or, on the CPU, 500 'internal error'; it is the server's state: 503 with
    Retry-After, as when it is busy, the out-of-memory line in the reply and in the server's log."""
    import torch

    from birefvid.runtime import Segmenter

    class RunsOutOfMemory(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            torch.empty(1 << 55, dtype=torch.uint8)  # torch's own allocator failure, real
            return self.conv(x)

    args = argparse.Namespace(model=None, weights=None, backbone=None, resolution="64", keep_aspect=False,
                              device="cpu", precision="fp32", backend="torch")  # fmt: skip
    seg = Segmenter(module=RunsOutOfMemory(), device="cpu", precision="fp32", backend="torch", resolution=64)
    httpd = CutoutServer("127.0.0.1", 0, CutoutService(args, seg, queue=1))
    worker = threading.Thread(target=httpd.serve_forever, daemon=True)
    worker.start()
    try:
        status, headers, body = _request(httpd, "POST", "/v1/remove", photo.read_bytes())
    finally:
        httpd.shutdown()
        httpd.server_close()
    said = _one_line_error(status, headers, body)
    assert status == 503 and headers["retry-after"] == "2", (status, said)
    assert said.startswith("cpu ran out of memory running the model on 1 frame at 64x64 (DefaultCPUAllocator: can't allocate memory")
    assert any("out of memory" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
