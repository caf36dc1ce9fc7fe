"""--sink parsing: each form opens the right sink, bad values fail with one clear line, and it is all or nothing."""

from __future__ import annotations

import socket
import sys
import types

import pytest

from birefvid.errors import ConfigError, SinkError, cli_naming
from birefvid.io.http_preview import HttpPreviewSink
from birefvid.io.live_base import LiveSink
from birefvid.io.live_sinks import open_live_sink, open_live_sinks, parse_http_address
from birefvid.io.record_sink import RecordingSink
from birefvid.io.republish import RepublishingSink

SIZE = dict(width=64, height=48, fps=25.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("http://127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("http://0.0.0.0:9000/", ("0.0.0.0", 9000)),
        ("HTTP://localhost:0", ("localhost", 0)),
        ("http://[::1]:8081", ("::1", 8081)),
    ],
)
def test_http_addresses_parse(spec, expected):
    assert parse_http_address(spec) == expected


@pytest.mark.parametrize(
    "spec,match",
    [
        ("http://127.0.0.1", "names no port"),
        ("http://127.0.0.1:99999", "no valid port"),
        ("http://127.0.0.1:web", "no valid port"),
        ("http://:8080", "names no host"),
        ("http://127.0.0.1:8080/live", "give no path"),
        ("http://127.0.0.1:8080/?q=1", "give no path"),
        ("http://me:pw@127.0.0.1:8080", "no user name"),
        ("https://127.0.0.1:8080", "not an http:// address"),
    ],
)
def test_bad_http_addresses_say_what_is_wrong(spec, match):
    with pytest.raises(ConfigError, match=match) as info:
        parse_http_address(spec)
    assert "http://127.0.0.1:8080" in str(info.value) and "\n" not in str(info.value)


def test_each_form_opens_its_sink(tmp_path):
    http = open_live_sink("http://127.0.0.1:0", kind="rgba", **SIZE)
    try:
        assert isinstance(http, HttpPreviewSink) and http.port > 0 and _listening(http.port)
    finally:
        http.close()
    rec = open_live_sink(str(tmp_path / "rec.webm"), kind="rgba", **SIZE)
    assert isinstance(rec, RecordingSink) and rec.name == str(tmp_path / "rec.webm")
    rec.abort()
    port = _free_port()
    for url in (f"rtsp://127.0.0.1:{port}/cam", f"tcp://127.0.0.1:{port}"):  # nothing listening yet: connected once it is
        waiting = open_live_sink(url, kind="rgb", **SIZE)
        assert isinstance(waiting, RepublishingSink) and waiting.name == url and not waiting.taken
        waiting.abort()
    udp = open_live_sink(f"udp://127.0.0.1:{port}", kind="gray", **SIZE)  # datagrams need no one listening
    assert isinstance(udp, RepublishingSink) and udp.name == f"udp://127.0.0.1:{port}"  # reopened if it breaks
    udp.close()
    with pytest.raises(SinkError, match="^cannot send to tcp://127.0.0.1: "):  # a wrong address is still an error at once
        open_live_sink("tcp://127.0.0.1", kind="rgb", **SIZE)


class _FakeDisplay(LiveSink):
    """Stands in for the window / virtual-camera sinks, which need a desktop or a v4l2loopback device."""

    accepts = frozenset({"rgb", "gray"})
    made: list[dict] = []

    def __init__(self, **kw: object) -> None:
        super().__init__()
        _FakeDisplay.made.append(kw)

    name = "fake"

    def _send(self, picture, t):
        pass

    def _close(self):
        pass


@pytest.mark.parametrize(
    "spec,module,cls,expected",
    [
        ("window", "birefvid.io.window_sink", "WindowSink", {"width": 64, "height": 48, "title": "birefvid", "sample_aspect_ratio": None, "mirror": False}),
        ("virtualcam", "birefvid.io.virtualcam_sink", "VirtualCamSink", {"width": 64, "height": 48, "fps": 25.0, "sample_aspect_ratio": None}),
    ],
)
def test_window_and_virtualcam_are_built_with_the_stream_facts(monkeypatch, spec, module, cls, expected):
    fake = types.ModuleType(module)
    setattr(fake, cls, _FakeDisplay)
    monkeypatch.setitem(sys.modules, module, fake)
    _FakeDisplay.made.clear()
    sink = open_live_sink(spec, kind="rgb", **SIZE)
    assert isinstance(sink, _FakeDisplay) and _FakeDisplay.made == [expected]
    with cli_naming(), pytest.raises(SinkError, match=rf"^--sink {spec} cannot carry rgba pictures \(it takes gray, rgb\); for alpha"):
        open_live_sink(spec, kind="rgba", **SIZE)
    with pytest.raises(SinkError, match=rf"^the sink '{spec}' cannot carry rgba pictures"):  # as Python callers name it
        open_live_sink(spec, kind="rgba", **SIZE)
    with cli_naming(), pytest.raises(SinkError, match=rf"^--sink {spec} cannot carry --effect alpha \(it takes --effect blur, replace, "
                                                        r"green, none, mask or overlay\); for alpha"):  # what the user chose, not a picture kind
        open_live_sink(spec, kind="rgba", effect="alpha", **SIZE)
    assert len(_FakeDisplay.made) == 1  # refused before anything was opened


def test_rgba_to_rtsp_is_refused_before_connecting():
    with socket.socket() as silent:  # would stall a connection attempt; the kind check comes first
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        spec = f"rtsp://127.0.0.1:{silent.getsockname()[1]}/out"
        with pytest.raises(SinkError, match=r"cannot carry rgba pictures \(it takes gray, rgb\); for alpha, record to a \.webm"):
            open_live_sink(spec, kind="rgba", **SIZE)


def test_bad_rtmp_sinks_are_refused_before_connecting_without_showing_the_key():
    with socket.socket() as silent:  # would stall a connection attempt; these checks come first
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        base = f"rtmp://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(SinkError, match=r"live/\*\*\*' cannot carry rgba pictures") as refused:
            open_live_sink(f"{base}/live/k3y", kind="rgba", **SIZE)
        assert "k3y" not in str(refused.value)
        with pytest.raises(SinkError, match="names a server, an application and a stream key"):
            open_live_sink(f"{base}/live", kind="rgb", **SIZE)


@pytest.mark.parametrize(
    "spec,kind,match",
    [
        ("ftp://example.org/x.ts", "rgb", "ftp:// outputs are not supported; expected window, virtualcam, rtsp://.*, udp://HOST:PORT, tcp://HOST:PORT"),
        ("", "rgb", "a sink is empty"),
        ("out.mp4", "bgr", "unknown picture kind 'bgr'"),
    ],
)
def test_unknown_forms_are_config_errors(spec, kind, match):
    with pytest.raises(ConfigError, match=match):
        open_live_sink(spec, kind=kind, **SIZE)


def test_duplicates_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    port = _free_port()
    preview = f"http://127.0.0.1:{port}"
    for specs in ([preview, "out.mp4", f"{tmp_path}/out.mp4"], [preview, f"{preview}/"]):
        with pytest.raises(ConfigError, match="is given twice"):
            open_live_sinks(specs, kind="rgb", **SIZE)
        assert list(tmp_path.iterdir()) == [] and not _listening(port)


def test_all_open_or_none(tmp_path):
    port = _free_port()
    specs = [f"http://127.0.0.1:{port}", str(tmp_path / "a.mp4"), str(tmp_path / "missing" / "b.mp4")]
    with pytest.raises(SinkError, match="output folder does not exist"):
        open_live_sinks(specs, kind="rgb", **SIZE)
    # the preview that opened first stopped listening and the recording left no temporary file
    assert not _listening(port) and list(tmp_path.iterdir()) == []

    sinks = open_live_sinks([*specs[:2], "http://127.0.0.1:0", "http://127.0.0.1:0"], kind="rgb", **SIZE)
    try:
        assert [type(s) for s in sinks] == [HttpPreviewSink, RecordingSink, HttpPreviewSink, HttpPreviewSink]
        assert sinks[0].port == port and len({s.port for s in sinks if isinstance(s, HttpPreviewSink)}) == 3
    finally:
        for s in sinks:
            s.abort()
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_sink_s_error_line_shows_every_form_readable():
    """The command line hides secrets in URLs of every error line; the list of forms is no URL of the user's, and its
    RTMP form came out as rtmp://*** (a template with [:PORT] reads as a malformed URL, shown as nothing)."""
    import subprocess

    from pathlib import Path

    clip = Path(__file__).resolve().parents[1] / "samples" / "scene.mp4"
    run = subprocess.run([sys.executable, "-m", "birefvid", "live", "--source", str(clip), "--sink", "ftp://example.org/x.ts"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "***" not in lines[0], lines
    assert "rtmp(s)://HOST[:PORT]/APP/KEY" in lines[0] and "rtsp://HOST[:PORT]/PATH" in lines[0], lines
