"""Files with several video streams (a drone's proxy, an MP4 whose first track is disabled, an MKV whose first
track is a one-picture thumbnail): every command takes the video ffmpeg would, and says which it took and which
it left out."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Optional

import av
import numpy as np
import pytest

from birefvid.cli import main
from birefvid.io.live_source import open_live_source
from media import add_subtitles, make_images, make_video, merge_audio
from system_tools import need_binary


pytestmark = pytest.mark.usefixtures("one_cpu_thread")  # speed: conftest says why


FAST_MODEL = ["--model", "tiny", "--device", "cpu", "--resolution", "64", "-q"]
MAIN, PROXY, THUMB = (96, 64), (48, 32), (64, 64)  # (width, height)
FRAMES = 6


def _picture(size: tuple[int, int], value: int) -> np.ndarray:
    w, h = size
    return np.full((h, w, 3), value, np.uint8)


def write_streams(path: Path, tracks: list[tuple[str, tuple[int, int], int, Optional[av.stream.Disposition]]]) -> Path:
    """A file with one video stream per ``(codec, size, frames, disposition)``, in that order, at 10 fps."""
    with av.open(str(path), "w") as out:
        streams = []
        for codec, (w, h), _, disposition in tracks:
            s = out.add_stream(codec, rate=10)
            s.width, s.height = w, h
            s.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
            s.codec_context.time_base = Fraction(1, 10)
            if disposition is not None:
                s.disposition = disposition
            streams.append(s)
        for i in range(FRAMES):
            for s, (_, size, count, _) in zip(streams, tracks):
                if i < count:
                    frame = av.VideoFrame.from_ndarray(_picture(size, 40 * (streams.index(s) + 1)), format="rgb24")
                    frame.pts, frame.time_base = i, Fraction(1, 10)
                    out.mux(s.encode(frame.reformat(format=s.pix_fmt)))
        for s in streams:
            out.mux(s.encode(None))
    return path


def shape(path: Path) -> tuple[tuple[int, int], int]:
    """(width, height) and frame count of ``path``'s first video stream."""
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    return (frames[0].width, frames[0].height), len(frames)


@pytest.fixture(scope="module")
def disabled_first(tmp_path_factory) -> Path:
    """An MP4 whose first track is a proxy, disabled; the main video, second, is the enabled (default) one."""
    folder = tmp_path_factory.mktemp("disabled")
    none, default = av.stream.Disposition(0), av.stream.Disposition.default
    return write_streams(folder / "proxy_first.mp4", [("libx264", PROXY, FRAMES, none), ("libx264", MAIN, FRAMES, default)])


@pytest.fixture(scope="module")
def thumbnail_first(tmp_path_factory) -> Path:
    """An MKV whose first track is a one-picture JPEG thumbnail, as `ffmpeg -i thumb.png -i clip.mp4 -map 0 -map 1` writes."""
    folder = tmp_path_factory.mktemp("thumb")
    return write_streams(folder / "thumb_first.mkv", [("mjpeg", THUMB, 1, None), ("libx264", MAIN, FRAMES, None)])


def test_process_takes_the_enabled_track_and_says_so(disabled_first, tmp_path, caplog):
    out = tmp_path / "out.mp4"
    with caplog.at_level(logging.WARNING):
        assert main(["process", str(disabled_first), "-o", str(out), "--output", "green", *FAST_MODEL]) == 0
    assert shape(out) == (MAIN, FRAMES)
    said = [r.getMessage() for r in caplog.records if "video streams" in r.getMessage()]
    assert len(said) == 1 and said[0].endswith("proxy_first.mp4 has 2 video streams; processing #1 (h264 96x64, default), "
                                               "as ffmpeg would, and leaving out #0 (h264 48x32) (`--video-stream N` of "
                                               "process, batch and live takes #N instead)"), said


@pytest.mark.parametrize("kind,ext", [("alpha", ".mov"), ("mask", ".mkv")])
def test_process_skips_a_thumbnail_track(thumbnail_first, tmp_path, kind, ext):
    out = tmp_path / f"out{ext}"
    assert main(["process", str(thumbnail_first), "-o", str(out), "--output", kind, *FAST_MODEL]) == 0
    assert shape(out) == (MAIN, FRAMES)  # the thumbnail gave a one-frame 64x64 output


def test_live_file_source_skips_a_thumbnail_track(thumbnail_first, tmp_path):
    out = tmp_path / "session.mkv"
    assert main(["live", "--source", str(thumbnail_first), "--effect", "green", "--sink", str(out), *FAST_MODEL[:-1]]) == 0
    assert shape(out) == (MAIN, FRAMES)


def test_batch_and_eval_take_the_same_stream(disabled_first, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / disabled_first.name).write_bytes(disabled_first.read_bytes())
    out = tmp_path / "out"
    assert main(["batch", str(inputs), "--output-dir", str(out), "--ext", ".mkv", "--output", "mask", *FAST_MODEL]) == 0
    produced = out / "proxy_first.mkv"
    assert shape(produced) == (MAIN, FRAMES)
    # eval reads the same track: scored against the mask made from it, not refused for the proxy's size
    capsys.readouterr()
    assert main(["eval", str(disabled_first), str(produced), "--json", "-"]) == 0, capsys.readouterr().err


@pytest.fixture(scope="module")
def two_audio_tracks(tmp_path_factory) -> Path:
    """A screen recording's layout: the video, the microphone ("Mic") and the system sound ("System") as two tracks."""
    folder = tmp_path_factory.mktemp("two_audio")
    clip = make_video(folder / "clip.mp4", n_frames=FRAMES, size=MAIN, fps=10).path
    system = make_video(folder / "system.mp4", n_frames=FRAMES, size=MAIN, fps=10).path
    return merge_audio(clip, [system], folder / "screen.mkv", ["eng", "eng"], default=0, titles=["Mic", "System"])


def test_live_says_it_carries_the_first_of_several_audio_tracks(two_audio_tracks, tmp_path, caplog):
    out = tmp_path / "session.mkv"
    with caplog.at_level(logging.WARNING):
        assert main(["live", "--source", str(two_audio_tracks), "--effect", "green", "--sink", str(out), *FAST_MODEL[:-1]]) == 0
    with av.open(str(out)) as c:
        assert len(c.streams.audio) == 1  # live mode carries one track
    said = [r.getMessage() for r in caplog.records if "audio tracks" in r.getMessage()]
    assert said == [f"{two_audio_tracks} has 2 audio tracks; recordings and streams carry the first (Mic, eng, default) only "
                    "(birefvid process keeps them all)"], said


def test_live_carries_the_audio_track_flagged_default(tmp_path, caplog):
    """A film with its English track first and its French one flagged default (the one players play) was recorded
    by `live --source` with the English sound: the first track was taken, the default flag unread."""
    clip = make_video(tmp_path / "clip.mp4", n_frames=FRAMES, size=MAIN, fps=10).path
    other = make_video(tmp_path / "other.mp4", n_frames=FRAMES, size=MAIN, fps=10).path
    film = merge_audio(clip, [other], tmp_path / "film.mkv", ["eng", "fra"], default=1, titles=["English", "Français"])
    out = tmp_path / "session.mkv"
    with caplog.at_level(logging.WARNING):
        assert main(["live", "--source", str(film), "--effect", "green", "--sink", str(out), *FAST_MODEL[:-1]]) == 0
    with av.open(str(out)) as c:
        assert [t.metadata.get("language") for t in c.streams.audio] == ["fra"]
    said = [r.getMessage() for r in caplog.records if "audio tracks" in r.getMessage()]
    assert said == [f"{film} has 2 audio tracks; recordings and streams carry #1 (Français, fra, default) only "
                    "(birefvid process keeps them all)"], said



def test_a_stream_carries_the_audio_track_flagged_default_too(tmp_path, caplog):
    """The same film served as a stream (a Matroska over HTTP, no file suffix: read as a network source) was recorded
    with its first, English track, though `live --source film.mkv` took the French one flagged default: streams read
    ``streams.audio[0]``."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    clip = make_video(tmp_path / "clip.mp4", n_frames=FRAMES, size=MAIN, fps=10).path
    other = make_video(tmp_path / "other.mp4", n_frames=FRAMES, size=MAIN, fps=10).path
    merge_audio(clip, [other], tmp_path / "film.mkv", ["eng", "fra"], default=1, titles=["English", "Français"])
    (tmp_path / "film.mkv").rename(tmp_path / "film")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out = tmp_path / "session.mkv"
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/film"
        assert main(["live", "--source", url, "--effect", "green", "--sink", str(out), "--duration", "1",
                     *FAST_MODEL]) == 0  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    with av.open(str(out)) as c:
        assert [t.metadata.get("language") for t in c.streams.audio] == ["fra"]  # it was "eng"

def test_live_says_a_source_files_subtitles_are_not_carried(tmp_path, caplog):
    """`live --source film.mkv --sink rec.mkv` left the film's subtitle track out of the recording without a word,
    where a data stream and a second audio track are each named in a warning; said once, not at each --loop pass."""
    clip = make_video(tmp_path / "clip.mp4", n_frames=FRAMES, size=MAIN, fps=10).path
    (tmp_path / "s.srt").write_text("1\n00:00:00,000 --> 00:00:00,500\nhello\n")
    film = tmp_path / "film.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-i", str(tmp_path / "s.srt"), "-map", "0", "-map", "1",
                    "-c", "copy", "-c:s", "srt", str(film)], check=True)  # fmt: skip
    out = tmp_path / "session.mkv"
    with caplog.at_level(logging.WARNING):
        assert main(["live", "--source", str(film), "--loop", "--duration", "2", "--effect", "green", "--sink", str(out),
                     *FAST_MODEL[:-1]]) == 0  # fmt: skip
    with av.open(str(out)) as c:
        assert not c.streams.subtitles
    said = [r.getMessage() for r in caplog.records if "subtitle" in r.getMessage()]
    assert said == [f"{film} has 1 subtitle track, which recordings and streams do not carry (birefvid process keeps them)"], said


def test_a_web_files_subtitles_and_audio_tracks_are_said_once_a_run_not_at_each_loop_pass(tmp_path, caplog):
    """`live --source http://host/film.mkv --loop` opens the file again at each pass, and a URL, which cannot be looked
    at, was always new to ``first_time_about_file``: the subtitle, audio-track and data-stream warnings came again at every pass
    (six times in a 6 s run of a 0.5 s clip); said once a run now, as for a local file."""
    import functools
    import http.server

    from birefvid.io.live_connections import FileConnection
    from birefvid.said_once import run_scope

    clip = make_video(tmp_path / "clip.mp4", n_frames=FRAMES, size=MAIN, fps=10).path
    (tmp_path / "s.srt").write_text("1\n00:00:00,000 --> 00:00:00,500\nhello\n")
    other = make_video(tmp_path / "other.mp4", n_frames=FRAMES, size=MAIN, fps=10).path
    talk = merge_audio(clip, [other], tmp_path / "talk.mkv", ["eng", "fra"], default=1)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(talk), "-i", str(tmp_path / "s.srt"), "-map", "0", "-map", "1",
                    "-c", "copy", "-c:s", "srt", str(tmp_path / "film.mkv")], check=True)  # fmt: skip
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clip), "-timecode", "01:00:00:00", "-c", "copy",
                    str(tmp_path / "tc.mov")], check=True)  # a timecode track: a data stream  # fmt: skip

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/film.mkv"
    try:
        with caplog.at_level(logging.WARNING), run_scope():
            for _ in range(3):  # three --loop passes
                FileConnection(url, audio=True).close()
                FileConnection(url.replace("film.mkv", "tc.mov")).close()
    finally:
        server.shutdown()
        server.server_close()
    said = [r.getMessage() for r in caplog.records]
    assert [m for m in said if "subtitle track" in m] == [f"{url} has 1 subtitle track, which recordings and streams do not carry "
                                                   "(birefvid process keeps them)"], said  # fmt: skip
    assert len([m for m in said if "audio tracks" in m]) == 1, said
    assert len([m for m in said if "data stream" in m]) == 1, said


def test_live_recordings_carry_the_audio_tracks_language_and_title(tmp_path):
    """A German commentary track ("deu", "Kommentar") came out of `live --sink talk.mkv` untagged, where `process`
    keeps both: recordings now carry the chosen track's language and title (MP4 its title as the track's name)."""
    clip = make_video(tmp_path / "clip.mp4", n_frames=FRAMES, size=MAIN, fps=10).path
    tagged = merge_audio(clip, [], tmp_path / "talk.mkv", ["deu"], default=0, titles=["Kommentar"])
    outs = [tmp_path / "out.mkv", tmp_path / "out.mp4", tmp_path / "out.mov"]
    sinks = [arg for out in outs for arg in ("--sink", str(out))]
    assert main(["live", "--source", str(tagged), "--effect", "green", *sinks, *FAST_MODEL]) == 0
    for out in outs:
        with av.open(str(out)) as c:
            meta = c.streams.audio[0].metadata
            assert (meta.get("title") or meta.get("name")) == "Kommentar", (out.name, meta)
            # FFmpeg's MOV muxer takes only QuickTime's language codes ("ger", not ISO's "deu"), as in `process`
            assert meta.get("language") == ("deu" if out.suffix != ".mov" else None), (out.name, meta)
    plain = make_video(tmp_path / "plain.mp4", n_frames=FRAMES, size=MAIN, fps=10).path  # an untagged track gets no made-up tags
    assert main(["live", "--source", str(plain), "--effect", "green", "--sink", str(tmp_path / "plain.mkv"), *FAST_MODEL]) == 0
    with av.open(str(tmp_path / "plain.mkv")) as c:
        assert "title" not in c.streams.audio[0].metadata and c.streams.audio[0].metadata.get("language", "und") == "und"


def write_klv_ts(path: Path) -> Path:
    """An MPEG-TS with a drone's layout: video, sound and a KLV telemetry data stream (MISB)."""
    clip = make_video(path.with_suffix(".mp4"), n_frames=FRAMES, size=MAIN, fps=10).path
    with av.open(str(clip)) as src, av.open(str(path), "w") as out:
        targets = {s.index: out.add_stream_from_template(s) for s in (src.streams.video[0], src.streams.audio[0])}
        data = out.add_data_stream("klv")
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = targets[packet.stream.index]
                out.mux(packet)
        for i in range(2):
            packet = av.Packet(bytes.fromhex("060e2b34") + bytes(12) + b"\x01\x00")
            packet.stream, packet.time_base = data, Fraction(1, 90000)
            packet.pts = packet.dts = 9000 * (i + 1)
            out.mux(packet)
    return path


def test_process_says_a_data_stream_is_left_out(tmp_path, caplog):
    source = write_klv_ts(tmp_path / "drone.ts")
    out = tmp_path / "out.mp4"
    with caplog.at_level(logging.WARNING):
        assert main(["process", str(source), "-o", str(out), "--output", "green", *FAST_MODEL]) == 0
    assert shape(out) == (MAIN, FRAMES)
    said = [r.getMessage() for r in caplog.records if "data stream" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"{source} has data stream #2 (klv), which no output carries"), said


def test_live_says_a_data_stream_is_left_out_without_claiming_subtitles(tmp_path, caplog):
    """In `live --source`, whose recordings carry no subtitles, the data-stream warning said "birefvid keeps video,
    audio, subtitles and chapters": it now names `birefvid process` as what keeps them."""
    source = write_klv_ts(tmp_path / "drone.ts")
    with caplog.at_level(logging.WARNING):
        assert main(["live", "--source", str(source), "--effect", "green", "--sink", str(tmp_path / "rec.mkv"),
                     *FAST_MODEL[:-1]]) == 0  # fmt: skip
    said = [r.getMessage() for r in caplog.records if "data stream" in r.getMessage()]
    assert said == [f"{source} has data stream #2 (klv), which no output carries (birefvid process keeps video, audio, "
                    "subtitles and chapters; `ffmpeg -map` can copy it from the source into the result)"], said


def test_a_timecode_track_is_no_loss(tmp_path, caplog):
    source = make_video(tmp_path / "camera.mov", n_frames=FRAMES, size=MAIN, fps=10, timecode="01:00:00:00").path
    out = tmp_path / "out.mov"
    with caplog.at_level(logging.WARNING):
        assert main(["process", str(source), "-o", str(out), *FAST_MODEL]) == 0
    with av.open(str(source)) as c:
        assert len(c.streams.data) == 1  # the tmcd track, whose start timecode the output keeps as a tag
        timecode = c.streams.video[0].metadata["timecode"]  # "01:00:00:0": FFmpeg writes one frame digit at 10 fps
    with av.open(str(out)) as c:
        assert c.streams.video[0].metadata.get("timecode") == timecode
    assert not [r for r in caplog.records if "data stream" in r.getMessage()]


def test_an_mp4_chapter_track_is_no_loss(tmp_path, caplog):
    """FFmpeg shows an MP4's QuickTime chapter track as a data stream; its chapters are kept, so it was a
    false warning on every MP4 with chapters (a phone's or an editor's export)."""
    plain = make_video(tmp_path / "plain.mp4", n_frames=FRAMES, size=MAIN, fps=10).path
    source = add_subtitles(plain, tmp_path / "chaptered.mp4", [], [(0, 500, "Intro"), (500, 1000, "Main")])
    with av.open(str(source)) as c:
        assert [s.name for s in c.streams.data] == ["bin_data"]  # the chapter track
    out = tmp_path / "out.mp4"
    with caplog.at_level(logging.WARNING):
        assert main(["process", str(source), "-o", str(out), "--output", "green", *FAST_MODEL]) == 0
    with av.open(str(out)) as c:
        assert [ch["metadata"]["title"] for ch in c.chapters()] == ["Intro", "Main"]
    assert not [r for r in caplog.records if "data stream" in r.getMessage()]


def test_live_stream_takes_the_largest_of_two_video_streams(tmp_path, caplog):
    """An MPEG-TS over UDP whose first video stream is a proxy (TS flags no default): the live source took
    ``streams.video[0]``, the proxy, where ffmpeg takes the largest picture."""
    ts = write_streams(tmp_path / "two.ts", [("libx264", PROXY, FRAMES, None), ("libx264", MAIN, FRAMES, None)])
    data = ts.read_bytes() * 8  # played back to back: about 5 s of stream
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    caplog.set_level(logging.WARNING, logger="birefvid")
    with open_live_source(f"udp://127.0.0.1:{port}", read_timeout=3.0) as src:
        done = threading.Event()

        def send() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
                for i in range(0, len(data), 1316):
                    if done.is_set():
                        return
                    out.sendto(data[i : i + 1316], ("127.0.0.1", port))
                    time.sleep(0.002)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        src.start(timeout=10)
        captured = src.read(timeout=5)
        done.set()
        sender.join()
    assert captured is not None and captured.frame.image.shape[:2] == (MAIN[1], MAIN[0])
    said = [r.getMessage() for r in caplog.records if "video streams" in r.getMessage()]
    assert len(said) == 1 and "processing #1 (h264 96x64)" in said[0] and "leaving out #0 (h264 48x32)" in said[0], said
    assert said[0].endswith("of process and batch takes #N instead)"), said  # not live, which takes it for files only


def test_each_api_run_says_it_again(disabled_first, tmp_path, caplog):
    """The warning was remembered for the whole process: a notebook's or service's second run on the same file said
    nothing. Each run says it once, a live --loop run that reads the file three times included."""
    from birefvid.api import build_live_job, process_video, run_live

    def said() -> int:
        return sum("video streams" in r.getMessage() for r in caplog.records)

    model = {"model": "tiny", "device": "cpu", "resolution": 64, "overwrite": True}
    with caplog.at_level(logging.WARNING):
        for run in range(2):
            report = process_video(disabled_first, tmp_path / f"out{run}.mp4", kind="green", **model)
            assert report["frames"] == FRAMES and said() == run + 1
        for run in range(2):
            job = build_live_job(str(disabled_first), [str(tmp_path / f"live{run}.mkv")], effect="green", realtime=True,
                                 loop=True, duration=1.6, **model)  # fmt: skip
            report = run_live(job)
            whole = report["stats"]
            # the 0.6 s file was read more than once: the source's count, paced by --realtime, not the frames shown,
            # which a loaded machine (three test workers on two cores) drops as the model falls behind
            assert round(whole["source_fps"] * whole["seconds"]) > FRAMES + 2, whole
            assert said() == 3 + run


def test_each_iter_masks_loop_says_it_again(disabled_first, caplog):
    """iter_masks was left out of 'once a run': a notebook's second loop over the same file said nothing of the
    track left out, where a second process_video says it again."""
    from birefvid.api import iter_masks

    with caplog.at_level(logging.WARNING):
        for run in range(2):
            shapes = [mask.shape for _, mask in iter_masks(disabled_first, model="tiny", device="cpu", resolution=64)]
            assert shapes == [(MAIN[1], MAIN[0])] * FRAMES
            assert sum("video streams" in r.getMessage() for r in caplog.records) == run + 1


# -- --video-stream N: another of the file's video streams ------------------------------------------------------------
PROXY_FRAMES, MAIN_FRAMES = 20, 24  # different lengths, so a count tells which stream an output came from


@pytest.fixture(scope="module")
def drone_file(tmp_path_factory) -> Path:
    """A drone's layout, written by ffmpeg: #0 a 48x32 proxy (disabled) with a keyframe every 4 frames, #1 the 96x64
    main video (default), and a sound track."""
    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    path = tmp_path_factory.mktemp("drone") / "dji.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", f"testsrc=size=48x32:rate=10:duration={PROXY_FRAMES / 10}",
                    "-f", "lavfi", "-i", f"testsrc2=size=96x64:rate=10:duration={MAIN_FRAMES / 10}",
                    "-f", "lavfi", "-i", "sine=duration=2.4", "-map", "0", "-map", "1", "-map", "2",
                    "-c:v", "libx264", "-g", "4", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    "-disposition:v:0", "0", "-disposition:v:1", "default", str(path)], check=True)  # fmt: skip
    return path


def test_default_warning_names_the_option_with_the_number_to_copy(drone_file, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert main(["process", str(drone_file), "-o", str(tmp_path / "out.mkv"), "--output", "mask", *FAST_MODEL]) == 0
    assert shape(tmp_path / "out.mkv") == (MAIN, MAIN_FRAMES)
    said = [r.getMessage() for r in caplog.records if "video streams" in r.getMessage()]
    assert len(said) == 1 and said[0].endswith("leaving out #0 (h264 48x32) (`--video-stream N` of process, batch and live "
                                               "takes #N instead)"), said


def test_process_takes_the_video_stream_asked_for(drone_file, tmp_path, caplog):
    out = tmp_path / "proxy.mkv"
    with caplog.at_level(logging.WARNING):
        assert main(["process", str(drone_file), "-o", str(out), "--output", "mask", "--video-stream", "0", *FAST_MODEL]) == 0
    assert shape(out) == (PROXY, PROXY_FRAMES)
    with av.open(str(out)) as c:
        assert len(c.streams.video) == 1 and len(c.streams.audio) == 1  # the sound is kept as with ffmpeg's choice
    assert not [r for r in caplog.records if "video streams" in r.getMessage()]  # chosen: nothing to warn of


def test_batch_takes_the_video_stream_asked_for_in_chunks(drone_file, tmp_path):
    """Planned in chunks by the proxy's own keyframes, each chunk read from the proxy: 20 frames of 48x32."""
    progress = tmp_path / "progress.jsonl"
    out = tmp_path / "out"
    assert main(["batch", str(drone_file), "--output-dir", str(out), "--ext", ".mkv", "--output", "mask", "--video-stream", "0",
                 "--chunk-frames", "8", "--progress-json", str(progress), *FAST_MODEL]) == 0  # fmt: skip
    assert shape(out / "dji.mkv") == (PROXY, PROXY_FRAMES)
    end = [e for e in map(json.loads, progress.read_text().splitlines()) if e["event"] == "end"][0]
    assert (end["chunks"], end["frames"]) == (3, PROXY_FRAMES), end  # 8 + 8 + 4 frames, cut at the proxy's keyframes


def test_a_batch_rerun_with_another_stream_dates_the_video_until_overwrite(drone_file, tmp_path, capsys):
    """The number is in the job's fingerprint: the proxy's output is not taken for the main video's, nor redone
    without a word; the rerun is refused as after any changed option, and --overwrite redoes it."""
    out = tmp_path / "out"
    argv = ["batch", str(drone_file), "--output-dir", str(out), "--ext", ".mkv", "--output", "mask", *FAST_MODEL]
    assert main([*argv, "--video-stream", "0"]) == 0 and shape(out / "dji.mkv") == (PROXY, PROXY_FRAMES)
    capsys.readouterr()
    assert main([*argv, "--video-stream", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was made by an earlier batch with other options" in err[0], err
    assert shape(out / "dji.mkv") == (PROXY, PROXY_FRAMES)
    assert main([*argv, "--video-stream", "1", "--overwrite"]) == 0 and shape(out / "dji.mkv") == (MAIN, MAIN_FRAMES)


def test_live_plays_the_video_stream_asked_for(drone_file, tmp_path):
    """`live --source dji.mp4` played the main video only: --video-stream 0 plays the proxy, as process and batch take it."""
    out = tmp_path / "proxy.mkv"
    assert main(["live", "--source", str(drone_file), "--effect", "green", "--sink", str(out), "--video-stream", "0", *FAST_MODEL[:-1]]) == 0
    assert shape(out) == (PROXY, PROXY_FRAMES)


@pytest.mark.parametrize("source,what", [("0", "a camera"), ("rtsp://127.0.0.1:8554/cam", "a live stream")])
def test_live_refuses_a_video_stream_for_cameras_and_streams(tmp_path, capsys, source, what):
    code = main(["live", "--source", source, "--sink", str(tmp_path / "x.mkv"), "--video-stream", "1", *FAST_MODEL[:-1]])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"birefvid: error: --video-stream chooses among a video file's video streams; {source} is {what}"), err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["process", "batch", "live"])
def test_a_number_past_the_streams_is_one_line_naming_them(drone_file, tmp_path, capsys, command):
    target = {"process": ["-o", str(tmp_path / "x.mkv"), "--output", "mask"], "batch": ["--output-dir", str(tmp_path / "out"), "--output", "mask"],
              "live": ["--sink", str(tmp_path / "x.mkv"), "--effect", "mask"]}[command]
    command_line = [str(drone_file), *target, "--video-stream", "2", *FAST_MODEL]
    code = main([command, *command_line] if command != "live" else ["live", "--source", *command_line])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0] == (f"birefvid: error: {drone_file} has no video stream #2 (--video-stream 2): its video streams are "
                      "#0 (h264 48x32), #1 (h264 96x64, default)"), err
    assert not list(tmp_path.glob("x*")) and not any((tmp_path / "out").glob("*.mkv"))


def test_a_cover_picture_is_no_video_stream(tmp_path, capsys):
    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    clip = make_video(tmp_path / "clip.mp4", n_frames=FRAMES, size=MAIN, fps=10).path
    cover = tmp_path / "cover.png"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "color=red:size=32x32", "-frames:v", "1", str(cover)], check=True)
    song = tmp_path / "covered.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-i", str(clip), "-i", str(cover), "-map", "0", "-map", "1", "-c", "copy",
                    "-disposition:v:1", "attached_pic", str(song)], check=True)  # fmt: skip
    code = main(["process", str(song), "-o", str(tmp_path / "x.mkv"), "--output", "mask", "--video-stream", "1", *FAST_MODEL])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"birefvid: error: {song}: video stream #1 (--video-stream 1) is a cover picture or "
                                 "thumbnail track, no video: its only video stream is #0 (h264 96x64, default)"], err


@pytest.mark.parametrize("extra,expected", [
    (["--video-stream", "-1"], "--video-stream must be a video stream's number, 0 or more"),
    (["--video-stream", "1", "--decoder", "decord"], "--video-stream needs the PyAV decoder"),
])  # fmt: skip
def test_bad_video_stream_options(drone_file, tmp_path, capsys, extra, expected):
    code = main(["process", str(drone_file), "-o", str(tmp_path / "x.mkv"), "--output", "mask", *extra, *FAST_MODEL])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"birefvid: error: {expected}"), err


def test_an_image_folder_has_no_video_streams_to_choose(tmp_path, capsys):
    frames = tmp_path / "plate"
    make_images(frames, n=3, size=(64, 48))
    code = main(["process", str(frames), "-o", str(tmp_path / "x.mkv"), "--output", "mask", "--video-stream", "0", *FAST_MODEL])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--video-stream chooses among a video file's video streams" in err[0], err


def test_the_job_keeps_the_choice_and_leaves_it_out_when_unset(drone_file, tmp_path):
    from birefvid.api import build_file_job
    from birefvid.job import FileJob

    chosen = build_file_job(drone_file, tmp_path / "x.mkv", video_stream=0)
    assert FileJob.from_dict(chosen.to_dict()) == chosen
    assert "video_stream" not in build_file_job(drone_file, tmp_path / "x.mkv").to_dict()["source"]  # fingerprints as before


def test_a_loop_left_unfinished_silences_no_later_run(disabled_first, tmp_path, caplog):
    """A notebook that peeks at the first mask (`masks = iter_masks(...)`, `next(masks)`) and keeps the generator held
    its run open: every later process_video in that session shared what it had said, and said nothing of the track
    left out. Each later run says it again; the loop still says it once."""
    from birefvid.api import iter_masks, process_video

    def said() -> int:
        return sum("video streams" in r.getMessage() for r in caplog.records)

    with caplog.at_level(logging.WARNING):
        masks = iter_masks(disabled_first, model="tiny", device="cpu", resolution=64)
        next(masks)
        assert said() == 1
        for run in range(2):
            process_video(disabled_first, tmp_path / f"out{run}.mp4", kind="green", model="tiny", device="cpu", resolution=64)
            assert said() == 2 + run
        assert len(list(masks)) == FRAMES - 1 and said() == 3



def test_live_refuses_a_video_stream_for_an_animated_webp_and_keeps_the_choice_in_its_job(drone_file, tmp_path):
    """An animated WebP has one picture track (read by Pillow): a number is refused before the run, not as a capture failure."""
    from PIL import Image

    from birefvid.api import build_live_job
    from birefvid.errors import ConfigError
    from birefvid.job import LiveJob

    pictures = [Image.new("RGB", (32, 32), (40 * i, 0, 0)) for i in range(3)]
    webp = tmp_path / "anim.webp"
    pictures[0].save(webp, save_all=True, append_images=pictures[1:], duration=100)
    with pytest.raises(ConfigError, match=r"video_stream chooses among a video file.s video streams; .*anim.webp is an animated WebP"):
        open_live_source(str(webp), video_stream=0)
    job = build_live_job(str(drone_file), [str(tmp_path / "x.mkv")], video_stream=0)
    assert LiveJob.from_dict(job.to_dict()) == job and job.to_dict()["source"]["video_stream"] == 0  # the --report's job says which
