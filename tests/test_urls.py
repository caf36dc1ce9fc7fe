"""Secrets in URLs stay out of messages and run reports (birefvid/urls.py)."""

from __future__ import annotations

import json

from birefvid.urls import hide_secrets, shown_url, without_password, without_stream_key


def test_passwords_and_credential_parameters_are_hidden() -> None:
    assert without_password("rtsp://admin:hunter2@192.168.1.20:554/stream1") == "rtsp://admin:***@192.168.1.20:554/stream1"
    signed = "https://bucket.s3.amazonaws.com/talk.mp4?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=abc123&X-Amz-Expires=600"
    shown = without_password(signed)
    assert "abc123" not in shown and "AKIA" not in shown and "X-Amz-Expires=600" in shown, shown
    cam = "rtsp://cam/cgi?channel=1&user=admin&password=hunter2&subtype=0"
    assert without_password(cam) == "rtsp://cam/cgi?channel=1&user=admin&password=***&subtype=0"
    plain = "rtsp://cam.local:8554/live?channel=1&subtype=0"
    assert without_password(plain) == plain  # nothing secret: untouched, byte for byte
    assert without_password("rtsp://[::1") == "rtsp://[::1"  # malformed: left for FFmpeg to name


def test_camera_and_srt_logins_in_odd_parameters_are_hidden() -> None:
    """Foscam-style cameras take ?loginuse=admin&loginpas=PW (others ?pw=), and MediaMTX's SRT publishers
    streamid=publish:PATH:USER:PASSWORD: each was shown whole in the error line and the report."""
    foscam = "http://192.168.1.30/videostream.cgi?loginuse=admin&loginpas=hunter2"
    assert without_password(foscam) == "http://192.168.1.30/videostream.cgi?loginuse=admin&loginpas=***"
    assert "hunter2" not in shown_url("http://cam/snapshot.cgi?user=admin&pw=hunter2")
    srt = "srt://mtx.local:8890?streamid=publish:gate:alice:hunter2&pkt_size=1316"
    assert shown_url(srt) == "srt://mtx.local:8890?streamid=***&pkt_size=1316"


def test_rtmp_keys_are_hidden_and_everything_else_is_as_given() -> None:
    assert without_stream_key("rtmp://a.rtmp.youtube.com/live2/abcd-1234") == "rtmp://a.rtmp.youtube.com/live2/***"
    assert without_stream_key("rtmp://user:pw@Host:1935/app/key/") == "rtmp://user:***@Host:1935/app/***"
    assert without_stream_key("rtmp://[::1/live/key") == "rtmp://***"  # malformed: nothing shown
    assert shown_url("RTMPS://live.example/app/key") == "rtmps://live.example/app/***"
    assert shown_url("out/matte.mov") == "out/matte.mov" and shown_url("window") == "window"


def test_a_report_keeps_its_shape_with_its_secrets_hidden() -> None:
    report = {"source": "rtsp://u:pw@cam/1", "sinks": ["rec.mkv", "rtmp://h/app/KEY123"], "frames": 3,
              "job": {"sinks": ("rtmp://h/app/KEY123",), "nested": [{"url": "https://h/v.mp4?token=T0K"}]}}  # fmt: skip
    hidden = hide_secrets(report)
    text = json.dumps(hidden)
    assert "pw@" not in text and "KEY123" not in text and "T0K" not in text, text
    assert hidden["sinks"][0] == "rec.mkv" and hidden["frames"] == 3 and isinstance(hidden["job"]["sinks"], tuple)
    assert report["sinks"][1] == "rtmp://h/app/KEY123"  # the caller's own data is not changed


def test_a_failed_rtsp_output_names_its_address_without_the_password() -> None:
    """MediaMTX takes publishers' logins in the URL (rtsp://user:pass@host/path); the error line showed it."""
    import pytest

    from birefvid.errors import SinkError
    from birefvid.io.republish import tcp_reachable
    from birefvid.io.rtsp_sink import RtspPublishSink
    from live_media import free_port

    url = f"rtsp://pub:hunter2@127.0.0.1:{free_port()}/out"
    with pytest.raises(SinkError) as opened:
        RtspPublishSink(url, width=64, height=64, fps=10, kind="rgb", open_timeout=1)
    with pytest.raises(SinkError) as checked:
        tcp_reachable("rtsp://pub:hunter2@127.0.0.1:99999/out", 8554)()  # a port out of range: the message names the URL
    for error in (opened, checked):
        assert "hunter2" not in str(error.value) and "pub:***@127.0.0.1" in str(error.value), str(error.value)
