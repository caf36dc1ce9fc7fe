"""A built-in HTTP preview of the live output, for headless machines: open the printed URL in a browser.

``GET /`` is a page showing the stream (``/?picture``: the picture alone, filling the page over a
transparent background, for OBS's Browser Source; it picks up a restarted run as the page does; ``&alpha``: the
cut-out of an alpha run over transparency, from ``/alpha.mjpg``), ``GET /stream.mjpg`` a multipart MJPEG stream (the way
browsers show live JPEGs without any script), ``GET /alpha.mjpg`` the same with each picture's matte below it
(``alpha_stack``), ``GET /snapshot.jpg`` the newest picture;
``GET /effect`` says the run's effect and ``POST /effect`` (JSON ``{"effect": "none"}``) switches
it, from this machine only (``control_refusal``): turning a call's blur off shows the room;
``GET /status`` adds what the page's status line says (pictures so far, seconds since the last, the
source's state). Each
picture is JPEG-encoded at most once, whatever the number of viewers, and only when one asks for
it (nobody watching costs nothing); a viewer always gets the newest picture, so a slow one skips
pictures instead of falling behind.

With ``mirror`` the page shows the picture flipped left-right (a self-view, as call apps show it), by
the browser: the JPEGs stay as sent, since scripts, VLC and OBS (``/?picture`` too) read them as output.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hmac
import html
import ipaddress
import json
import logging
import re
import secrets
import select
import socket
import socketserver
import threading
import time
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Callable, Optional
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from birefvid.errors import SHOWS_SECRET, ConfigError, SinkError, sink_named
from birefvid.io import alpha_stack
from birefvid.io.live_base import LiveSink, LiveSource, checkerboard, over_checkerboard, picture_kind, to_square_pixels
from birefvid.io.peer_user import is_this_user
from birefvid.io.preview_token import TOKEN_ENV, preview_token

if TYPE_CHECKING:
    from birefvid.runtime.live_effects import EffectSwitch

log = logging.getLogger(__name__)

BOUNDARY = "birefvidframe"
MAX_CONNECTIONS = 32  # connections served at once (viewers included); more are answered 503 and closed
MAX_PER_CLIENT = 8  # of which one address other than this machine's may hold (a browser tab holds 2, OBS or VLC 1)
REQUEST_JOIN_SECONDS = 5.0  # how long close() waits for the connections it cut to end: one JPEG encode (0.5 s for 8K)
_BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 48\r\n"
         b"Connection: close\r\n\r\ntoo many connections to this preview; try later\n")
_WAIT = 0.5  # seconds a streaming viewer sleeps between checks (close() wakes it at once)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>birefvid live preview</title>
<link rel="icon" href="data:,">
<style>
body {{ margin: 0; background: #202124; color: #e8eaed; font: 16px sans-serif; text-align: center; }}
#picture {{ display: block; margin: 0 auto; max-width: 100%; max-height: calc(100vh - 8em); }}
p {{ margin: 0.6em; overflow-wrap: anywhere; }}
a {{ color: #8ab4f8; }}
#status {{ color: #fdd663; }}
button {{ font: inherit; margin: 0.2em; padding: 0.5em 1em; border: 1px solid #9aa0a6; border-radius: 4px;
          background: #303134; color: #e8eaed; cursor: pointer; }}
button[aria-pressed="true"] {{ background: #8ab4f8; border-color: #8ab4f8; color: #202124; font-weight: bold; }}
button:disabled {{ opacity: 0.5; cursor: default; }}
button:focus-visible {{ outline: 3px solid #fdd663; outline-offset: 2px; }}
.bare, .bare body {{ background: transparent; overflow: hidden; }}
.bare #picture {{ width: 100vw; height: 100vh; max-width: none; max-height: none; object-fit: contain; }}
.bare p {{ display: none; }}
#picture.mirrored {{ transform: scaleX(-1); }}
.bare #picture.mirrored {{ transform: none; }}
</style>
<script>if (new URLSearchParams(location.search).has("picture")) document.documentElement.className = "bare";</script></head>
<body>{picture}
<p id="status" role="status">connecting to the run</p>
<p id="effects" role="group" aria-label="effect"></p>
<p>birefvid live preview of {addr}: <a href="/snapshot.jpg{query}">snapshot</a> (the newest picture),
<a href="/stream.mjpg{query}">MJPEG stream</a> (for VLC or OBS), <a href="/?picture{also}">the picture alone</a> (for OBS's Browser Source),
<a href="/?picture&amp;alpha{also}">the cut-out over transparency</a> (OBS's Browser Source, with <code>--effect alpha</code>)</p>
"""
# the status line and the effect buttons: drawn from GET /status, refreshed every 2 s (a key pressed in
# the terminal or the window, or another client's POST /effect, shows here too). The line says what
# the picture cannot: the run is still starting (the model warms up, 20-40 s on a first run), the
# source is reconnecting (the picture is held), or the run stopped answering: the buttons are then
# disabled, and when a run answers here again the stream is opened anew. The buttons are made once
# and updated in place (aria-pressed marks the current effect), so the focus stays where it was.
_SCRIPT = """<script>
const box = document.getElementById("effects"), line = document.getElementById("status");
const picture = document.getElementById("picture"), buttons = new Map();
let made = "", gone = false, note = null, named = null;
function make(state) {
  const key = JSON.stringify([state.available, state.controllable]);
  if (key === made) return;
  made = key;
  box.textContent = "";
  buttons.clear();
  named = null;
  if (!state.available.length) return;
  box.append("effect: ");
  if (!state.controllable) {
    named = document.createElement("b");
    box.append(named, " (switched at http://127.0.0.1:" + location.port + "/ on the machine the run is on)");
    return;
  }
  for (const name of state.available) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = name;
    b.onclick = () => send(name);
    buttons.set(name, b);
    box.append(b, " ");
  }
  note = document.createElement("span");
  note.setAttribute("role", "alert");
  box.append(note);
}
function draw(state) {
  make(state);
  if ("mirrored" in state) picture.classList.toggle("mirrored", state.mirrored);  // a run started anew here may differ
  if (named) named.textContent = state.effect;
  for (const [name, b] of buttons) {
    b.setAttribute("aria-pressed", String(name === state.effect));
    b.disabled = gone;
  }
}
function say(text, short) {
  if (line.textContent !== text) line.textContent = text;
  line.hidden = !text;
  document.title = (short ? short + " - " : "") + "birefvid live preview";
}
function show(st) {
  if (!st.pictures) say("starting: the picture appears once the model is ready (20-40 s the first time, while it is exported)", "starting");
  else if (st.source === "reconnecting") say("the source is reconnecting: this is its last picture", "reconnecting");
  else if (st.age !== null && st.age > 3) say("no new picture for " + Math.round(st.age) + " s", "stalled");
  else say("");
}
function lost() {
  if (gone) return;
  gone = true;
  say("the run is not answering (it has ended); this page picks it up again when a run serves here", "ended");
  for (const b of buttons.values()) b.disabled = true;
}
// opened with ?token= (the URL the run printed), the page's own requests carry it: the cookie it got is that
// run's session only, and the next run on the port, which keeps the token, would refuse it
const token = new URLSearchParams(location.search).get("token");
function at(path) { return token ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : path; }
function reopen() { if (picture.tagName === "CANVAS") cutout(); else picture.src = at("/stream.mjpg?" + Date.now()); }
picture.onerror = () => { if (!gone) setTimeout(reopen, 2000); };
async function send(name) {
  if (buttons.get(name).getAttribute("aria-pressed") === "true") return;
  try {
    const r = await fetch(at("/effect"), {method: "POST", headers: {"Content-Type": "application/json"},
                                      body: JSON.stringify({effect: name})});
    const reply = await r.json();
    if (r.ok) { draw(reply); note.textContent = ""; }
    else { draw(await (await fetch(at("/effect"))).json()); note.textContent = " " + reply.error; }
  } catch (e) { lost(); }
}
async function poll() {
  let st;
  try {
    const r = await fetch(at("/status"));
    if (r.status === 503) {  // every connection the run serves is taken: it is alive, so nothing is disabled
      say("busy: every connection this preview serves is taken by other viewers; trying again", "busy");
      return;
    }
    if (!r.ok) throw new Error(r.status);
    st = await r.json();
  } catch (e) { lost(); return; }
  if (gone) { gone = false; reopen(); }  // a run serves here again: its stream is a new one
  draw(st);
  show(st);
}
poll(); setInterval(poll, 2000);
</script></body></html>
"""
_LOCAL_NAMES = ("localhost", "localhost.")
_PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")  # what reverse proxies add to name the client


# why another user of this machine is refused by a preview bound to loopback (Linux, where /proc/net/tcp names the owner)
OTHER_USER = "this preview is for the user running birefvid (and root): other users of this machine cannot watch it"


def _loopback(host: str) -> bool:
    """True for an address (or Host name) of this machine's loopback interface."""
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1 on a dual-stack socket
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def _host_name(host_header: str) -> str:
    """The host name in a Host header (``127.0.0.1:8080``, ``[::1]:8080``, ``localhost``); "" when it has none."""
    try:
        return urlsplit(f"//{host_header}").hostname or ""
    except ValueError:
        return ""


def control_refusal(client: str, host_header: str, origin: Optional[str], content_type: str, own_user: bool = True) -> Optional[str]:
    """Why a request to switch the effect is refused, or None to allow it.

    Only this machine switches: the request must come from a loopback address (``own_user``: held by the user
    of the run or root, ``peer_user``; another user of a shared machine turned the blur off), name a loopback host
    (a web page whose name was pointed at 127.0.0.1, DNS rebinding, sends its own), come from the
    preview's own page when a browser says where from (``Origin``), and carry JSON, which a page of
    another site cannot send here without a CORS check this server never passes.
    """
    if not _loopback(client):
        return "effects are switched from the machine the run is on (http://127.0.0.1:PORT/, or through an ssh tunnel)"
    if not own_user:
        return "effects are switched by the user running birefvid, not by other users of this machine"
    named = _host_name(host_header)
    if not _loopback(named):
        return f"effects are switched at a loopback address such as 127.0.0.1 or localhost, not {host_header or 'an unnamed host'}"
    if origin is not None and origin != f"http://{host_header}":
        return "effects are switched from the preview's own page"
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        return 'send JSON: Content-Type: application/json with {"effect": "NAME"}'
    return None



def access_refusal(token: Optional[str], client: str, host_header: str, query: str, cookie: str, authorization: str,
                   port: int, session: Optional[str] = None, own_user: bool = True) -> Optional[str]:  # fmt: skip
    """Why a request to a preview open to the network is refused, or None to let it in.

    This machine needs no token (a loopback client naming a loopback host: a page of another site
    pointed at 127.0.0.1 sends its own name; ``own_user``: the run's user or root holds the client's end);
    anyone else shows it (see ``shows_token``)."""
    if token is None or (_loopback(client) and own_user and _loopback(_host_name(host_header))):
        return None
    if shows_token(token, query, cookie, authorization, port, session):
        return None
    return ("this preview needs its token: open the URL birefvid printed (http://HOST:PORT/?token=...), "
            "or give the token as the password")


def shows_token(token: str, query: str, cookie: str, authorization: str, port: int, session: Optional[str] = None) -> bool:
    """Whether a request shows ``token`` as ``?token=`` or the password of HTTP Basic authentication (``curl -u :TOKEN``,
    the browser's login box), or this run's ``session`` as the cookie the page sets when opened with the token,
    compared in constant time. The cookie never holds the token: browsers send a host's cookies to all of its ports,
    so every other web server on this machine saw the token, which stays good from run to run."""
    shown = parse_qs(query).get("token", [])
    if authorization[:6].lower() == "basic ":
        try:
            shown.append(base64.b64decode(authorization[6:].strip(), validate=True).decode().partition(":")[2])
        except (binascii.Error, UnicodeDecodeError):
            pass
    if any(hmac.compare_digest(v.encode(), token.encode()) for v in shown if v.isascii()):
        return True
    cookies = [v for k, v in _cookies(cookie) if k == cookie_name(port)] if session else []
    return any(hmac.compare_digest(v.encode(), session.encode()) for v in cookies if v.isascii())  # type: ignore[union-attr]


_TOKEN_IN_URL = re.compile(r"([?&]token=)[^&\s\"]*")


def cookie_name(port: int) -> str:
    """The token's cookie, one per port: browsers send a host's cookies to all of its ports."""
    return f"birefvid_preview_{port}"


def _cookies(header: str) -> list[tuple[str, str]]:
    """(name, value) pairs of a Cookie header."""
    pairs = (part.strip().partition("=") for part in header.split(";"))
    return [(name.strip(), value.strip()) for name, _, value in pairs if name.strip()]


class _Board:
    """The newest picture with a sequence number, JPEG-encoded only when a viewer asks for it.

    Streaming viewers wait on the Condition for a newer picture. Encoding is lazy and cached per
    picture: with nobody watching nothing is encoded (a 1080p JPEG costs ~10 ms of CPU, a third of
    a 30 fps frame's time), with several viewers each picture is encoded once, and a slow viewer
    skips pictures without their encoding. The picture is kept by reference: the live runner
    never modifies a picture once sent.
    """

    def __init__(self, encode: Callable[[np.ndarray], bytes]) -> None:
        self._cond = threading.Condition()
        self._encode = encode
        self._picture: Optional[np.ndarray] = None
        self._seq = 0
        self._closed = False
        self._encode_lock = threading.Lock()
        self._cached: tuple[int, Optional[bytes]] = (0, None)  # (seq, jpeg) of the last picture encoded
        self.encoded = 0  # pictures encoded so far

    def put(self, picture: np.ndarray) -> None:
        with self._cond:
            self._picture, self._seq = picture, self._seq + 1
            self._cond.notify_all()

    def _jpeg(self, seq: int, picture: np.ndarray) -> bytes:
        """Picture ``seq`` as JPEG, encoded at most once (outside the Condition, so ``put`` never waits on it)."""
        with self._encode_lock:
            if self._cached[0] != seq:
                self._cached = (seq, self._encode(picture))
                self.encoded += 1
            jpeg = self._cached[1]
        assert jpeg is not None
        return jpeg

    def newest(self) -> Optional[bytes]:
        with self._cond:
            seq, picture = self._seq, self._picture
        return None if picture is None else self._jpeg(seq, picture)

    def next_after(self, seen: int, timeout: float) -> tuple[int, Optional[bytes]]:
        """(seq, jpeg) of a picture newer than ``seen``; (seen, None) after ``timeout``; (-1, None) once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._seq > seen, timeout)
            if self._closed:
                return -1, None
            if self._seq <= seen or self._picture is None:
                return seen, None
            seq, picture = self._seq, self._picture
        return seq, self._jpeg(seq, picture)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer on daemon threads that skips the reverse DNS lookup and logs quietly."""

    daemon_threads = True
    allow_reuse_port = False  # never share a port with another server: "in use" must be reported
    request_queue_size = 64  # a burst of connections waits for accept() instead of its SYNs being dropped

    def __init__(self, host: str, port: int, sink: "HttpPreviewSink") -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sink = sink
        self._active = 0  # connections being served, each on a thread of its own
        self._per_client: dict[str, int] = {}  # of which from each address other than loopback
        self._requests: dict[threading.Thread, socket.socket] = {}  # each connection's thread: cut and joined at close
        self._active_lock = threading.Lock()
        super().__init__((host, port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection on a thread, unless ``MAX_CONNECTIONS`` are served already: then 503 at once.

        Unbounded, every connection held a thread and a file descriptor (idle ones for 10 s, a client
        sending a byte every few seconds for ever): a client opening hundreds starved the run of
        threads and descriptors (recordings and reconnections open files and sockets too). One address
        other than this machine's holds ``MAX_PER_CLIENT`` of them at most: a single machine of the network,
        without the token, held all 32 (a byte of its request every few seconds) and no one saw the camera."""
        host = str(client_address[0])
        counted = not _loopback(host)  # a reverse proxy on this machine brings everyone from 127.0.0.1
        with self._active_lock:
            busy = self._active >= MAX_CONNECTIONS or (counted and self._per_client.get(host, 0) >= MAX_PER_CLIENT)
            if not busy:
                self._active += 1
                if counted:
                    self._per_client[host] = self._per_client.get(host, 0) + 1
        if not busy:
            # ThreadingMixIn's own, but kept track of: its daemon threads were never joined
            thread = threading.Thread(target=self.process_request_thread, args=(request, client_address),
                                      name=f"preview-{self.server_port}-request", daemon=True)  # fmt: skip
            with self._active_lock:
                self._requests[thread] = request
            try:
                thread.start()
            except BaseException:
                with self._active_lock:
                    self._requests.pop(thread, None)
                self._done(host)
                raise
            return
        try:
            request.setblocking(False)  # a client that reads nothing cannot hold up accept()
            request.send(_BUSY)
        except OSError:
            pass
        self.shutdown_request(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)  # type: ignore[misc]
        finally:
            with self._active_lock:
                self._requests.pop(threading.current_thread(), None)
            self._done(str(client_address[0]))

    def end_requests(self, seconds: float) -> list[threading.Thread]:
        """Cut every connection still served and wait up to ``seconds`` for their threads; returns those still running.

        Called once no more are accepted (after ``shutdown``). Why wait: a thread still encoding a JPEG for a snapshot
        or viewer (OpenCV, with the GIL released) when the script that closed the preview ended was cut off inside
        OpenCV's C++ as the interpreter finalized, which aborts the process ("terminate called without an active
        exception"). Cut first, so that no thread waits out a silent client (a browser's preconnect: 10 s)."""
        with self._active_lock:  # not the calling thread's own (a close from a request's handler): it cannot join itself
            requests = {t: conn for t, conn in self._requests.items() if t is not threading.current_thread()}
        for conn in requests.values():
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:  # closed already
                pass
        deadline = time.monotonic() + seconds
        for thread in requests:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return [thread for thread in requests if thread.is_alive()]

    def _done(self, host: str) -> None:
        with self._active_lock:
            self._active -= 1
            left = self._per_client.get(host, 0) - 1
            if left > 0:
                self._per_client[host] = left
            else:
                self._per_client.pop(host, None)

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: object, client_address: object) -> None:
        log.debug("preview connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """Routes GET /, /stream.mjpg and /snapshot.jpg; anything else is 404."""

    server: _Server
    server_version = "birefvid-preview"
    timeout = 10.0  # a viewer that stops reading for this long is dropped
    _head_only = False  # a HEAD request: headers, no body

    def do_HEAD(self) -> None:
        """GET's status and headers without the body: health checks (``curl -I``) probe with HEAD."""
        self._head_only = True
        self.do_GET()

    def _client(self) -> str:
        """The client's address, or ``"a proxy's client"`` for a request a reverse proxy passed on (it names the
        client in a header, as Apache and Caddy do by default, nginx as configured by most guides): coming from
        127.0.0.1, naming the loopback Host it was given (Apache's and nginx's default), every visitor of the
        proxy counted as this machine, watched without the token and switched the effect."""
        if any(self.headers.get(name) is not None for name in _PROXY_HEADERS):
            return "a proxy's client"
        return str(self.client_address[0])

    def _own_user(self) -> bool:
        """True unless the client is a loopback connection of another user of this machine (``peer_user``)."""
        if not _loopback(str(self.client_address[0])):
            return True  # another machine: the address decides
        return is_this_user(self.client_address, self.server.sink.port)

    def _let_in(self) -> bool:
        """True when the request may be served; else a 401 is sent (see ``access_refusal``), or a 403 to another user of this
        machine on a preview bound to loopback, which has no token to show: any of them watched another's camera."""
        sink = self.server.sink
        if sink.token is None and not self._own_user():
            self._reply(403, "text/plain; charset=utf-8", (OTHER_USER + "\n").encode())
            return False
        refusal = access_refusal(sink.token, self._client(), self.headers.get("Host", ""), urlsplit(self.path).query,
                                 self.headers.get("Cookie", ""), self.headers.get("Authorization", ""), sink.port, sink.session,
                                 own_user=sink.token is None or self._own_user())  # fmt: skip
        if refusal is None:
            return True
        body = (refusal + "\n").encode()
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="birefvid live preview (the password is its token)", charset="UTF-8"')
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not self._head_only:
            self.wfile.write(body)
        return False

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        route = url.path
        if not self._let_in():
            return
        if _loopback(self.server.sink.host) and not _loopback(_host_name(self.headers.get("Host", ""))):
            # a preview on 127.0.0.1 is for this machine: a web page whose name was pointed at 127.0.0.1
            # (DNS rebinding) sends its own name, and would otherwise read the camera's pictures
            self._reply(403, "text/plain; charset=utf-8", b"this preview answers at 127.0.0.1 or localhost only\n")
            return
        if route in ("/", "/index.html"):
            sink = self.server.sink
            # the token in the page's links (to copy into VLC or OBS) only for those who showed it: this machine, let
            # in without it, may be a reverse proxy or another user; opened with ?token=, the page's own requests
            # (status, buttons, a reopened stream) carry this run's session as a cookie
            shown = sink.token is not None and shows_token(sink.token, url.query, self.headers.get("Cookie", ""),
                                                           self.headers.get("Authorization", ""), sink.port, sink.session)  # fmt: skip
            cookie = None if not shown or "token" not in parse_qs(url.query) else (
                f"{cookie_name(sink.port)}={sink.session}; Path=/; HttpOnly; SameSite=Strict")
            alpha = "alpha" in parse_qs(url.query, keep_blank_values=True)
            self._reply(200, "text/html; charset=utf-8", sink.page(shown, alpha).encode(), cookie=cookie)
        elif route == "/snapshot.jpg":
            jpeg = self.server.sink.board.newest()
            if jpeg is None:
                self._reply(503, "text/plain; charset=utf-8", b"no picture yet: the preview starts with the first frame\n")
            else:
                self._reply(200, "image/jpeg", jpeg)
        elif route == "/stream.mjpg":
            self._stream(self.server.sink.board)
        elif route == "/alpha.mjpg":
            self._stream(self.server.sink.alpha_board)
        elif route == "/effect":
            self._json(200, self._effect_state())
        elif route == "/status":
            self._json(200, self._status())
        else:
            self._reply(404, "text/plain; charset=utf-8", b"not found: try / , /stream.mjpg, /alpha.mjpg, /snapshot.jpg, /effect or /status\n")

    def do_POST(self) -> None:
        """``POST /effect`` with ``{"effect": NAME}`` switches the run's effect (see ``control_refusal``)."""
        if not self._let_in():
            return
        if urlsplit(self.path).path != "/effect":
            self._json(404, {"error": "only /effect takes a POST"})
            return
        effects = self.server.sink.effects
        refusal = control_refusal(self._client(), self.headers.get("Host", ""), self.headers.get("Origin"),
                                  self.headers.get("Content-Type", ""), own_user=self._own_user())  # fmt: skip
        if refusal is not None:
            self._json(403, {"error": refusal})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= 4096:
                raise ValueError("a small JSON body")
            name = json.loads(self.rfile.read(length))["effect"]
            if not isinstance(name, str):
                raise ValueError("a name")
        except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: JSON nested deeper than Python's stack
            self._json(400, {"error": 'send {"effect": "NAME"}', "available": list(effects.available) if effects else []})
            return
        if effects is None:  # the run attaches its effects once the model is ready
            self._json(503, {"error": "the run is still starting; try again in a moment"})
            return
        try:
            effects.select(name, by="preview page")
        except ConfigError as e:
            self._json(409 if not effects.available else 400, {"error": str(e), "available": list(effects.available)})
            return
        self._json(200, self._effect_state())

    def _effect_state(self) -> dict[str, Any]:
        effects = self.server.sink.effects
        controllable = control_refusal(self._client(), self.headers.get("Host", ""), None, "application/json",
                                       own_user=self._own_user()) is None  # fmt: skip
        if effects is None:
            return {"effect": None, "available": [], "controllable": False}
        return {"effect": effects.effect, "available": list(effects.available), "controllable": controllable}

    def _status(self) -> dict[str, Any]:
        """What the page shows: the effect state, pictures sent so far, seconds since the last one, the source's state, and whether it mirrors."""
        sink = self.server.sink
        source = sink.source
        return {**self._effect_state(), "pictures": sink.pictures_sent, "age": sink.picture_age(),
                "source": source.state if source is not None else None, "mirrored": sink.mirror}  # fmt: skip

    def _json(self, code: int, body: dict[str, Any]) -> None:
        self._reply(code, "application/json", (json.dumps(body) + "\n").encode())

    def _reply(self, code: int, content_type: str, body: bytes, cookie: Optional[str] = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        if cookie is not None:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        # no other site may show the page in a frame: under a decoy, a visitor's click would press "none"
        # (clickjacking: the click is the page's own, so the Origin check passes) and show the room
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", "frame-ancestors 'none'")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")  # a page opened with ?token= names it to no one
        self.end_headers()
        if not self._head_only:
            self.wfile.write(body)

    def _stream(self, board: _Board) -> None:
        """A multipart MJPEG stream of ``board``'s pictures, the newest each time the viewer is ready for one."""
        sink = self.server.sink
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self._head_only or not sink.add_viewer(self.connection):
            return
        try:
            seen = 0
            while True:
                seen, jpeg = board.next_after(seen, _WAIT)
                if seen < 0:
                    return  # the sink closed
                if jpeg is None:
                    if _hung_up(self.connection):  # while the model warms up nothing is written to find it out
                        return
                    continue
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                self.wfile.write(head.encode() + jpeg + b"\r\n")
                self.wfile.flush()
        except OSError:  # the viewer went away (or close() cut the connection)
            return
        finally:
            sink.remove_viewer(self.connection)

    def log_message(self, format: str, *args: object) -> None:
        # a request line's ?token= stays out (with -v each one was logged: a log shared for help gave the camera away)
        log.debug("preview %s: %s", self.address_string(), _TOKEN_IN_URL.sub(r"\1...", format % args))


def _hung_up(conn: socket.socket) -> bool:
    """True when the peer has closed ``conn``: readable with nothing to read (a viewer sends nothing after its request)."""
    try:
        if hasattr(select, "poll"):  # select() refuses descriptors past 1024, which a long run's may be
            poller = select.poll()
            poller.register(conn, select.POLLIN)
            readable = bool(poller.poll(0))
        else:  # Windows
            readable = bool(select.select([conn], [], [], 0)[0])
        if not readable:
            return False
        return conn.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):  # reset, or already closed here
        return True


def _url_for_others(host: str, port: int) -> str:
    """The preview's URL as another machine would open it: for 0.0.0.0 or ::, this machine's outward address."""
    if host not in ("0.0.0.0", "::", ""):
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
    try:  # the address routes to the network leave from; a UDP socket's connect() sends nothing
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never a real host
            address = probe.getsockname()[0]
    except OSError:
        address = socket.gethostname()
    return f"http://{address}:{port}/"


def _bind_error(host: str, port: int, e: OSError) -> SinkError:
    """One line saying why the preview could not listen and what to do instead."""
    if e.errno == errno.EADDRINUSE:
        return SinkError(f"port {port} on {host} is in use; pick another with {sink_named('http://HOST:PORT')}")
    if e.errno == errno.EACCES:
        return SinkError(f"no permission to listen on port {port} on {host} (ports below 1024 need root); pick a higher port")
    if e.errno == errno.EADDRNOTAVAIL:
        return SinkError(f"{host} is not an address of this machine; listen on 127.0.0.1 (this machine) or 0.0.0.0 (all)")
    if isinstance(e, socket.gaierror):
        return SinkError(f"cannot resolve host {host!r} for the HTTP preview; use an IP address such as 127.0.0.1")
    return SinkError(f"cannot listen on {host}:{port} for the HTTP preview: {e.strerror or e}")


def to_jpeg(picture: np.ndarray, quality: int, checker: Optional[np.ndarray] = None) -> bytes:
    """JPEG bytes of an rgb, gray or rgba picture (rgba shown over ``checker``, a grey (H, W, 3) board)."""
    kind = picture_kind(picture)
    if kind == "rgba":
        picture = over_checkerboard(picture, checker)
    image = picture if kind == "gray" else cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise SinkError(f"JPEG encoding of a {picture.shape} picture failed")
    return data.tobytes()


class HttpPreviewSink(LiveSink):
    """Serves the newest picture to browsers at ``http://host:port/`` (port 0 picks a free one)."""

    accepts = frozenset({"rgb", "rgba", "gray"})
    holds_last = True

    def __init__(
        self, host: str, port: int, *, quality: int = 80, sample_aspect_ratio: Optional[Fraction] = None, mirror: bool = False,
        token: Optional[str] = None,
    ) -> None:
        """Listen on ``host``:``port``; ``sample_aspect_ratio``: the pictures' pixel shape when not square
        (a D1 camera's 12:11), which JPEG in a browser cannot say, so the JPEGs are resized to square pixels;
        ``mirror``: the page shows the picture flipped left-right (the JPEGs stay as sent); ``token``: what
        clients other than this machine must show (default: none on a loopback address, else ``preview_token()``)."""
        super().__init__()
        self.token = token if token is not None or _loopback(host) else preview_token()
        self.session = None if self.token is None else secrets.token_urlsafe(18)  # the page's cookie: this run's only
        self.mirror = mirror
        self.sample_aspect_ratio = sample_aspect_ratio
        if not 0 <= int(port) <= 65535:
            raise SinkError(f"port {port} is not a TCP port; pick one from 1 to 65535 in {sink_named('http://HOST:PORT')}")
        if not 1 <= int(quality) <= 100:
            raise SinkError(f"JPEG quality {quality} is out of range; pick 1 to 100")
        self.host, self.quality = host, int(quality)
        self.board = _Board(self._to_jpeg)
        self.alpha_board = _Board(self._to_stacked)  # /alpha.mjpg: colour above matte, encoded only while read
        self._said_opaque = False
        self.pictures_sent = 0
        self._checker: Optional[np.ndarray] = None
        self._viewers: set[socket.socket] = set()
        self._viewers_lock = threading.Lock()
        self._stopping = False
        try:
            self._server = _Server(host, int(port), self)
        except OSError as e:
            raise _bind_error(host, int(port), e) from e
        self.port = int(self._server.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/"
        self._pages = {(shown, alpha): self._page(shown, alpha) for shown in (False, True) for alpha in (False, True)}
        self.effects: Optional["EffectSwitch"] = None
        self.source: Optional[LiveSource] = None
        self._last_sent: Optional[float] = None  # time.monotonic() of the last picture
        self._serving_lock = threading.Lock()
        self._serving: Optional[bool] = None  # True once the thread serves, False once it must not
        self._thread = threading.Thread(target=self._serve, name=f"preview-{self.port}", daemon=True)
        try:
            self._thread.start()
        except BaseException:  # Ctrl-C or SIGTERM in start(): no sink is made to close, so the port would stay taken
            with self._serving_lock:
                serving, self._serving = self._serving, False
            if serving:
                self._server.shutdown()  # the thread runs serve_forever, which sees the request as it begins
            self._server.server_close()
            raise
        if self.token is None:
            log.info("live preview at %s", self.url)
        else:  # the one place the token is shown: other machines need it (this one does not)
            log.warning("live preview at %s (this machine), from other machines at %s?token=%s (the token is kept in "
                        "the cache folder, or set by $%s)", f"http://127.0.0.1:{self.port}/", _url_for_others(host, self.port),
                        self.token, TOKEN_ENV, extra=SHOWS_SECRET)  # fmt: skip

    def _serve(self) -> None:
        """The server thread: serves until shut down, or not at all when its start() was interrupted and the
        socket closed before it began (a loaded machine can begin it a second late)."""
        with self._serving_lock:
            if self._serving is False:
                return
            self._serving = True
        self._server.serve_forever(poll_interval=0.1)

    @property
    def name(self) -> str:
        return self.url.rstrip("/")

    def page(self, shown: bool, alpha: bool) -> str:
        """The page: with the token in its links when the client ``shown`` it; ``alpha``: a canvas showing
        ``/alpha.mjpg``'s cut-out over transparency in place of ``/stream.mjpg``'s picture."""
        return self._pages[(shown, alpha)]

    def _page(self, shown: bool, alpha: bool) -> str:
        query = f"?token={self.token}" if shown and self.token is not None else ""
        mirrored = "mirrored" if self.mirror else ""
        picture = (f'<canvas id="picture" class="{mirrored}" role="img" aria-label="the live cut-out of birefvid"></canvas>' if alpha
                   else f'<img src="/stream.mjpg{query}" id="picture" class="{mirrored}" alt="the live picture of birefvid">')  # fmt: skip
        return (_PAGE.format(addr=html.escape(self.url), picture=picture, query=query, also=query.replace("?", "&amp;"))
                + _SCRIPT + (alpha_stack.SCRIPT if alpha else ""))  # fmt: skip

    def attach_effects(self, effects: "EffectSwitch") -> None:
        """``/effect`` and the page's buttons switch ``effects`` (from this machine only)."""
        self.effects = effects

    def attach_source(self, source: LiveSource) -> None:
        """``/status`` (and the page) says when ``source`` reconnects."""
        self.source = source

    def picture_age(self) -> Optional[float]:
        """Seconds since the last picture (None before the first)."""
        last = self._last_sent
        return None if last is None else round(time.monotonic() - last, 1)

    @property
    def viewers(self) -> int:
        """Browsers currently watching /stream.mjpg."""
        with self._viewers_lock:
            return len(self._viewers)

    def add_viewer(self, conn: socket.socket) -> bool:
        """Track a streaming connection so close() can cut it; False when the sink is already closing."""
        with self._viewers_lock:
            if self._stopping:
                return False
            self._viewers.add(conn)
            return True

    def remove_viewer(self, conn: socket.socket) -> None:
        with self._viewers_lock:
            self._viewers.discard(conn)

    def _send(self, picture: np.ndarray, t: float) -> None:
        picture_kind(picture)  # a bad picture fails here, in the sender's thread, not in a viewer's
        self.board.put(picture)  # encoded when a viewer asks (see _Board)
        self.alpha_board.put(picture)
        self.pictures_sent += 1
        self._last_sent = time.monotonic()

    def _to_jpeg(self, picture: np.ndarray) -> bytes:
        picture = to_square_pixels(picture, self.sample_aspect_ratio)  # here: only pictures a viewer asks for
        checker = None
        if picture_kind(picture) == "rgba":
            checker = self._checker
            if checker is None or checker.shape[:2] != picture.shape[:2]:
                checker = self._checker = checkerboard(picture.shape[0], picture.shape[1])
        return to_jpeg(picture, self.quality, checker)

    def _to_stacked(self, picture: np.ndarray) -> bytes:
        if picture_kind(picture) != "rgba" and not self._said_opaque:
            self._said_opaque = True  # else OBS shows the whole room, and nothing says why
            log.warning("the preview's cut-out (/?picture&alpha, /alpha.mjpg) is opaque: this run's pictures carry no "
                        "matte; run with --effect alpha for the subject over transparency")  # fmt: skip
        return alpha_stack.stacked_jpeg(to_square_pixels(picture, self.sample_aspect_ratio))

    def _close(self) -> None:
        with self._viewers_lock:
            self._stopping = True
            viewers = list(self._viewers)
        self.board.close()  # waiting viewers return
        self.alpha_board.close()
        for conn in viewers:  # viewers blocked writing to a stalled browser fail at once
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=1.0)
        left = self._server.end_requests(REQUEST_JOIN_SECONDS)
        if left:
            log.debug("the preview at %s closed with %d connections still being served", self.url, len(left))
        log.info("live preview at %s stopped after %d pictures", self.url, self.pictures_sent)
