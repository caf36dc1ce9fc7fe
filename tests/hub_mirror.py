"""A local Hugging Face mirror for the download tests: what ``hf_hub_download`` asks of ``HF_ENDPOINT``.

``HubMirror`` answers, on 127.0.0.1 only, the two requests huggingface_hub (plain HTTP, no Xet) makes for a file:

- ``HEAD /{repo}/resolve/{revision}/{file}``: a redirect to the file's blob, as the hub answers for an LFS file,
  carrying the metadata on the redirect itself (``X-Repo-Commit``, ``X-Linked-Etag``: the sha256 in quotes,
  ``X-Linked-Size``), to ``localhost`` rather than ``127.0.0.1``, another host name, so that huggingface_hub
  takes the metadata from the redirect and does not follow it, as for the hub's CDN;
- ``GET /blobs/{sha256}``: the bytes, ``Content-Length``, ``ETag``, ``Accept-Ranges``; a ``Range: bytes=N-`` gets
  ``206`` and ``Content-Range``.

A missing repo or file is a ``404`` with the hub's ``X-Error-Code`` (``RepoNotFound``, ``EntryNotFound``). Faults a
flaky link or a misconfigured mirror shows: ``drop_after`` (the connection closed after N bytes of a file, for the
first ``drops`` GETs), ``status`` (every request answered with that status, e.g. 500 or 429), ``html`` (a web page
with status 200 instead of the hub's answer, as a captive portal or a wrong ``HF_ENDPOINT`` gives; ``"blobs"``: only
instead of the file's bytes, the metadata right), ``rate`` (bytes a
second, to interrupt a download under way), ``corrupt`` (a byte of each file changed, its size and announced
SHA-256 kept, as a mirror's own damaged copy). ``requests`` records (method, path, Range header) of each request
for a file (huggingface_hub's other requests, such as ``/api/agent-harnesses``, get a 404 and are not recorded).

The server runs on daemon threads and shuts itself down after ``lifetime`` seconds if a test never stops it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

COMMIT = "0123456789abcdef0123456789abcdef01234567"
HTML = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please sign in to the proxy.</body></html>\n"


class HubMirror:
    def __init__(self, files: dict[tuple[str, str], bytes], *, lifetime: float = 120.0) -> None:
        self.files = dict(files)
        self.drop_after: Optional[int] = None
        self.drops = 1
        self.status: Optional[int] = None
        self.html: bool | str = False
        self.rate: Optional[float] = None
        self.corrupt = False
        self.requests: list[tuple[str, str, Optional[str]]] = []
        self._blobs = {hashlib.sha256(data).hexdigest(): data for data in self.files.values()}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True

    def __enter__(self) -> "HubMirror":
        self._thread.start()
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._timer.cancel()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def gets(self) -> list[tuple[str, str, Optional[str]]]:
        return [r for r in self.requests if r[0] == "GET"]

    def _take_drop(self) -> Optional[int]:
        with self._lock:
            if self.drop_after is None or self.drops <= 0:
                return None
            self.drops -= 1
            return self.drop_after


def _handler(mirror: HubMirror) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet: the tests read `mirror.requests`
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _plain(self, status: int, body: bytes, headers: dict[str, str], send: bool) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send:
                self.wfile.write(body)

        def _answer(self, body: bool) -> None:
            if "/resolve/" in self.path or self.path.startswith("/blobs/"):  # not huggingface_hub's other asks (/api/...)
                mirror.requests.append((self.command, self.path, self.headers.get("Range")))
            if mirror.status is not None:
                extra = {"Retry-After": "1"} if mirror.status in (429, 503) else {}
                return self._plain(mirror.status, b'{"error":"mirror trouble"}', {"Content-Type": "application/json", **extra}, body)
            if mirror.html is True:
                return self._plain(200, HTML, {"Content-Type": "text/html; charset=utf-8"}, body)
            path = self.path.split("?", 1)[0]
            if path.startswith("/blobs/"):
                if mirror.html == "blobs":
                    return self._plain(200, HTML, {"Content-Type": "text/html; charset=utf-8"}, body)
                data = mirror._blobs.get(path[len("/blobs/"):])
                if data is None:
                    return self._plain(404, b"not found", {}, body)
                return self._blob(data, body)
            if "/resolve/" not in path:
                return self._plain(404, b"not found", {}, body)
            repo, rest = path.lstrip("/").split("/resolve/", 1)
            revision, _, filename = rest.partition("/")
            if not any(r == repo for r, _ in mirror.files):
                return self._plain(404, b'{"error":"Repository not found"}', {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, body)
            data = mirror.files.get((repo, filename))
            if data is None:
                return self._plain(404, b'{"error":"Entry not found"}', {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found", "X-Repo-Commit": COMMIT}, body)
            sha = hashlib.sha256(data).hexdigest()
            self._plain(302, b"", {"Location": f"http://localhost:{mirror.port}/blobs/{sha}", "X-Repo-Commit": COMMIT,
                                   "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data)), "ETag": '"resolve"'}, body)

        def _blob(self, data: bytes, body: bool) -> None:
            start = 0
            ranged = self.headers.get("Range")
            if ranged and ranged.startswith("bytes=") and ranged.endswith("-"):
                start = int(ranged[len("bytes="):-1])
            if mirror.corrupt:
                middle = len(data) // 2
                data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]
            part = data[start:]
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(part)))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{self.path.rsplit("/", 1)[-1]}"')
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if not body:
                return
            drop = mirror._take_drop()
            limit = len(part) if drop is None else max(0, min(len(part), drop - start))
            sent = 0
            while sent < limit:
                piece = part[sent:min(limit, sent + 65536)]
                try:
                    self.wfile.write(piece)
                except (BrokenPipeError, ConnectionResetError):  # the client went (Ctrl-C)
                    self.close_connection = True
                    return
                sent += len(piece)
                if mirror.rate:
                    time.sleep(len(piece) / mirror.rate)
            if drop is not None:
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)  # the link drops: the client sees the body end early

    return Handler
