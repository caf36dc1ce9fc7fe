"""Headless Chromium driven over the DevTools protocol, on a plain socket (no websocket library).

``headless_chromium(profile)`` starts one browser; ``browser.open(url, size)`` gives a ``Tab`` whose
``eval`` runs JavaScript in the page and whose ``problems()`` lists what the page's console showed
as errors (failed loads, script exceptions), as a developer's console would.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

from system_tools import need_binary, own_temp_dir


class Tab:
    """One page over its DevTools websocket: ``call`` a protocol method, ``eval`` JavaScript, ``wait`` for events."""

    def __init__(self, ws_url: str) -> None:
        host_port, path = ws_url[len("ws://") :].split("/", 1)
        host, port = host_port.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())  # fmt: skip
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            assert chunk, "DevTools closed the websocket handshake"
            buf += chunk
        head, self._buf = buf.split(b"\r\n\r\n", 1)
        assert b" 101 " in head.split(b"\r\n")[0], head
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def _exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _send(self, text: str) -> None:
        data, mask = text.encode(), os.urandom(4)
        n = len(data)
        size = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.sock.sendall(bytes([0x81]) + size + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _receive(self) -> dict[str, Any]:
        message = b""
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._exact(8))[0]
            message += self._exact(n)
            if b0 & 0x80:
                return json.loads(message)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        sent = self._id
        self._send(json.dumps({"id": sent, "method": method, "params": params}))
        while True:
            message = self._receive()
            if message.get("id") == sent:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait(self, seconds: float) -> None:
        """Let the page run for ``seconds``, collecting its events."""
        end = time.monotonic() + seconds
        try:
            while (left := end - time.monotonic()) > 0:
                self.sock.settimeout(left)
                self.events.append(self._receive())
        except (socket.timeout, TimeoutError):
            pass
        finally:
            self.sock.settimeout(30)

    def eval(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def until(self, expression: str, timeout: float, what: str) -> Any:
        """The value of ``expression`` once truthy, polled every 0.2 s (an error, as before the page loaded, is falsy)."""
        end = time.monotonic() + timeout
        while True:
            try:
                value = self.eval(expression)
            except RuntimeError as e:
                value = e
            if value and not isinstance(value, Exception):
                return value
            if time.monotonic() > end:
                raise AssertionError(f"the page never showed {what} within {timeout:g} s (last: {value!r})")
            self.wait(0.2)

    def problems(self) -> list[str]:
        """Console errors and uncaught exceptions, one line each."""
        out = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append(f"exception: {params['exceptionDetails'].get('text')} {params['exceptionDetails'].get('exception', {}).get('description', '')}")
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                out.append(f"{params['entry']['text']} ({params['entry'].get('url', '')})")
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                out.append(f"console.{params['type']}: {[a.get('value') for a in params['args']]}")
        return out

    def close(self) -> None:
        self.sock.close()


class Browser:
    def __init__(self, port: int) -> None:
        self.port = port

    def open(self, url: str, size: tuple[int, int] = (800, 600), mobile: bool = False) -> Tab:
        """A new tab showing ``url`` in a ``size`` viewport (``mobile``: a phone's, which reads the page's viewport tag)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as r:
            tab = Tab(json.load(r)["webSocketDebuggerUrl"])
        for domain in ("Runtime", "Log", "Page"):
            tab.call(f"{domain}.enable")
        tab.call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1, mobile=mobile)
        tab.call("Page.navigate", url=url)
        return tab


@contextlib.contextmanager
def headless_chromium(profile: Path) -> Iterator[Browser]:
    """Headless Chromium with DevTools on a port it picks (read from its profile's DevToolsActivePort)."""
    chromium = need_binary("chromium", "chromium")
    temp = contextlib.ExitStack()
    env = temp.enter_context(own_temp_dir("chromium-"))
    proc = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        active = profile / "DevToolsActivePort"
        end = time.monotonic() + 30
        while not (active.is_file() and active.read_text().strip()):
            assert proc.poll() is None and time.monotonic() < end, "chromium did not start its DevTools server"
            time.sleep(0.05)
        yield Browser(int(active.read_text().split()[0]))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        temp.close()
