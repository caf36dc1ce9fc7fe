"""Subtitles and chapters: copied where the container holds them, dropped with a warning where it cannot."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import numpy as np
import pytest

from birefvid.api import process_video
from birefvid.cli import main
from birefvid.io import open_sink, open_source
from media import add_subtitles, chapter_marks, make_video, subtitle_cues
from process_fixtures import red_key_segmenter
from test_batch_media import MODEL, keyframed_clip

FRENCH = [(200, 900, "Bonjour"), (1200, 1900, "Au revoir")]
ENGLISH = [(300, 1000, "Hello"), (1300, 2000, "Goodbye")]
CHAPTERS = [(0, 1000, "Intro"), (1000, 2000, "Main")]


def _film(tmp_path: Path, name: str, tracks, n_frames: int = 50, forced=()) -> Path:
    """A 2 s clip (25 fps, with audio) carrying subtitle ``tracks`` and two chapters."""
    plain = make_video(tmp_path / f"plain{Path(name).suffix}", n_frames=n_frames, size=(64, 48), with_audio=True)
    return add_subtitles(plain.path, tmp_path / name, tracks, CHAPTERS, forced=forced)


def _copy(src: Path, out: Path, **kw) -> None:
    """Decode ``src`` and write it back as the runner does, carrying its subtitles and chapters."""
    with open_source(src) as source:
        info, frames = source.info, list(source)
    with open_sink(out, kind="rgb", info=info, subtitles_from=str(src), chapters_from=str(src), **kw) as sink:
        for f in frames:
            sink.write(f.image[None], [f.pts])


def test_every_subtitle_track_and_the_chapters_are_kept_in_matroska(tmp_path):
    src = _film(tmp_path, "film.mkv", [("subrip", "fra", FRENCH), ("ass", "eng", ENGLISH)])
    _copy(src, tmp_path / "out.mkv")
    got = subtitle_cues(tmp_path / "out.mkv")
    assert [(codec, lang) for codec, lang, _ in got] == [("srt", "fra"), ("ssa", "eng")]  # FFmpeg's decoder names
    assert got == subtitle_cues(src)  # same cues, same text, same times
    assert [(start, end) for start, end, _ in got[0][2]] == [(0.2, 0.9), (1.2, 1.9)]
    assert [text for _, _, text in got[0][2]] == [b"Bonjour", b"Au revoir"]
    assert chapter_marks(tmp_path / "out.mkv") == [(0.0, 1.0, "Intro"), (1.0, 2.0, "Main")]


@pytest.mark.parametrize("src_name,codec,out_name", [("film.mkv", "subrip", "out.mkv"), ("film.mp4", "mov_text", "out.mp4")])
def test_a_forced_subtitle_track_stays_forced_and_default(tmp_path, src_name, codec, out_name):
    # the foreign-dialogue track players show on their own: without its flags it stayed hidden (or, in
    # MP4, the first track was shown instead)
    src = _film(tmp_path, src_name, [(codec, "eng", ENGLISH), (codec, "fra", FRENCH)], forced=[1])
    _copy(src, tmp_path / out_name)
    with av.open(str(tmp_path / out_name)) as c:
        flags = [(s.metadata.get("language"), int(s.disposition & (av.stream.Disposition.default | av.stream.Disposition.forced)))
                 for s in c.streams.subtitles]  # fmt: skip
    assert flags == [("eng", 0), ("fra", int(av.stream.Disposition.default | av.stream.Disposition.forced))]


def test_the_fonts_an_ass_track_uses_are_kept_in_matroska(tmp_path):
    """An anime fansub's ASS track is styled with fonts attached to the MKV; without them players draw it
    in a fallback font (they were dropped)."""
    import av

    subs = _film(tmp_path, "subs.mkv", [("ass", "eng", ENGLISH)], n_frames=10)
    font = b"\x00\x01\x00\x00 not really a font"
    src = tmp_path / "fansub.mkv"
    with av.open(str(subs)) as a, av.open(str(src), "w") as b:
        streams = {s.index: b.add_stream_from_template(s) for s in a.streams}
        b.add_attachment("Comic.ttf", "font/ttf", font)
        for packet in a.demux():
            if packet.size:
                packet.stream = streams[packet.stream.index]
                b.mux(packet)
    _copy(src, tmp_path / "out.mkv")
    with av.open(str(tmp_path / "out.mkv")) as c:
        assert [(s.name, s.mimetype, bytes(s.data)) for s in c.streams.attachments] == [("Comic.ttf", "font/ttf", font)]
    assert subtitle_cues(tmp_path / "out.mkv") == subtitle_cues(src)


@pytest.mark.parametrize("out_name", ["out.mp4", "out.mov"])
def test_mp4_text_subtitles_are_kept_in_mp4_and_mov(tmp_path, out_name):
    src = _film(tmp_path, "film.mp4", [("mov_text", "eng", ENGLISH)])  # MOV keeps only codes it knows: 'eng', not 'deu'
    _copy(src, tmp_path / out_name)
    assert subtitle_cues(tmp_path / out_name) == subtitle_cues(src)
    assert subtitle_cues(src)[0][0] == "mov_text" and len(subtitle_cues(src)[0][2]) == 2
    assert chapter_marks(tmp_path / out_name) == chapter_marks(src) == [(0.0, 1.0, "Intro"), (1.0, 2.0, "Main")]


def test_webvtt_is_kept_in_webm(tmp_path):
    src = _film(tmp_path, "film.webm", [("webvtt", "spa", FRENCH)], n_frames=25)
    with open_source(src) as source:
        info, frames = source.info, list(source)
    with open_sink(tmp_path / "out.webm", kind="alpha", info=info, subtitles_from=str(src), chapters_from=str(src)) as sink:
        for f in frames:
            sink.write(np.dstack([f.image, np.full(f.image.shape[:2], 255, np.uint8)])[None], [f.pts])
    assert subtitle_cues(tmp_path / "out.webm") == subtitle_cues(src) and subtitle_cues(src)[0][:2] == ("webvtt", "spa")
    assert chapter_marks(tmp_path / "out.webm") == [(0.0, 1.0, "Intro"), (1.0, 2.0, "Main")]


@pytest.mark.parametrize(
    "src_name,codec,name,out_name,keep",
    [("film.mkv", "subrip", "srt", "out.mp4", ".mkv"), ("film.mp4", "mov_text", "mov_text", "out.mkv", ".mp4 or .mov")],
)
def test_a_track_the_container_cannot_hold_is_dropped_with_a_warning(tmp_path, caplog, src_name, codec, name, out_name, keep):
    src = _film(tmp_path, src_name, [(codec, "fra", FRENCH)])
    caplog.set_level(logging.WARNING, logger="birefvid")
    _copy(src, tmp_path / out_name)
    assert subtitle_cues(tmp_path / out_name) == []
    warned = [r.getMessage() for r in caplog.records if "subtitle" in r.getMessage()]
    assert len(warned) == 1 and f"subtitle track 1 ({name}, fra) cannot go into {Path(out_name).suffix}" in warned[0]
    assert warned[0].endswith(f"write {keep} to keep it")
    assert chapter_marks(tmp_path / out_name) == [(0.0, 1.0, "Intro"), (1.0, 2.0, "Main")]  # chapters fit either


def test_process_keeps_subtitles_and_no_subtitles_drops_them(tmp_path):
    src = _film(tmp_path, "film.mkv", [("subrip", "fra", FRENCH)], n_frames=8)
    seg = red_key_segmenter()
    report = process_video(src, tmp_path / "kept.mkv", kind="green", segmenter=seg, smooth="none")
    assert report["frames"] == 8
    assert subtitle_cues(tmp_path / "kept.mkv") == subtitle_cues(src)
    assert chapter_marks(tmp_path / "kept.mkv") == chapter_marks(src)
    process_video(src, tmp_path / "dropped.mkv", kind="green", segmenter=seg, smooth="none", subtitles=False)
    assert subtitle_cues(tmp_path / "dropped.mkv") == [] and chapter_marks(tmp_path / "dropped.mkv") == chapter_marks(src)


def test_no_subtitles_cli_flag(tmp_path, pvt_b0_weights):
    src = _film(tmp_path, "film.mkv", [("subrip", "fra", FRENCH)], n_frames=4)
    args = ["--output", "mask", "--weights", str(pvt_b0_weights), "--resolution", "64", "--device", "cpu", "-q"]
    assert main(["process", str(src), "-o", str(tmp_path / "with.mkv"), *args]) == 0
    assert main(["process", str(src), "-o", str(tmp_path / "without.mkv"), "--no-subtitles", *args]) == 0
    assert len(subtitle_cues(tmp_path / "with.mkv")) == 1 and subtitle_cues(tmp_path / "without.mkv") == []


def test_batch_join_keeps_subtitles_and_chapters(tmp_path):
    clip = keyframed_clip(tmp_path / "clip.mkv", 24)  # splits into chunks of 6 frames, joined at the end
    src = add_subtitles(clip, tmp_path / "film.mkv", [("subrip", "fra", [(100, 400, "Un"), (600, 900, "Deux")])],
                        [(0, 480, "A"), (480, 960, "B")])  # fmt: skip
    out = tmp_path / "out"
    assert main(["batch", str(src), "--output-dir", str(out), "--output", "mask", "--chunk-frames", "6", "-q", *MODEL]) == 0
    result = out / "film.mkv"
    assert subtitle_cues(result) == subtitle_cues(src) and len(subtitle_cues(src)[0][2]) == 2
    assert chapter_marks(result) == [(0.0, 0.48, "A"), (0.48, 0.96, "B")]
