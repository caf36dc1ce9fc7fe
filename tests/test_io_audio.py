"""Audio: copied when the container takes the codec, re-encoded otherwise, interleaved, same duration."""

from __future__ import annotations

import logging
from fractions import Fraction

import av
import numpy as np
import pytest

from birefvid.io import open_sink, open_source
from media import (audio_codec, audio_duration, damage_packet, hide_leading_frames, listdir, make_video, merge_audio, shift_timestamps,
                   stuffed_ts, ts_with_sound)
from system_tools import need_binary


def _process(src_path, out_path, kind="alpha", **kw):
    """Decode the input and write it back like the runner does (the source's info and pts)."""
    with open_source(src_path) as src:
        info = src.info
        frames = list(src)
    with open_sink(out_path, kind=kind, info=info, audio_from=str(src_path), **kw) as sink:
        for f in frames:
            img = f.image if kind == "rgb" else np.dstack([f.image, np.full(f.image.shape[:2], 255, np.uint8)])
            sink.write(img[None], [f.pts])
    return info


@pytest.mark.parametrize(
    "src_name,out_name,kind,expected_codec",
    [
        ("in.mp4", "out.mov", "alpha", "aac"),  # AAC copied into MOV
        ("in.mp4", "out.mkv", "alpha", "aac"),  # AAC copied into MKV
        ("in.mp4", "out.webm", "alpha", "opus"),  # AAC re-encoded to Opus for WebM
        ("in.webm", "out.webm", "alpha", "opus"),  # Opus copied
        ("in.webm", "out.mp4", "rgb", "opus"),  # Opus is allowed in MP4: copied
        ("in.webm", "out.mov", "alpha", "aac"),  # Opus re-encoded to AAC for MOV
    ],
)
def test_audio_kept_with_duration_within_one_frame(tmp_path, src_name, out_name, kind, expected_codec):
    g = make_video(tmp_path / src_name, n_frames=10, with_audio=True)
    info = _process(g.path, tmp_path / out_name, kind)
    assert audio_codec(tmp_path / out_name) == expected_codec
    frame = 1 / float(info.average_rate)
    assert abs(audio_duration(tmp_path / out_name) - audio_duration(g.path)) <= frame
    assert sorted(listdir(tmp_path)) == sorted([src_name, out_name])


def _first_times(path) -> tuple[float, float]:
    """Seconds of the first decoded video frame and the first decoded audio frame."""
    with av.open(str(path)) as c:
        video = next(c.decode(video=0))
    with av.open(str(path)) as c:
        audio = next(c.decode(audio=0))
    return float(video.pts * video.time_base), float(audio.pts * audio.time_base)


@pytest.mark.parametrize("out_name,kind,expected_codec", [("out.mp4", "rgb", "aac"), ("out.webm", "alpha", "opus")])
def test_reencoded_audio_stays_in_sync_with_video_that_starts_late(tmp_path, out_name, kind, expected_codec):
    # like an MPEG-TS (streams from ~1.4 s): the video keeps its timestamps, so re-encoded audio must too
    g = make_video(tmp_path / "in.mkv", n_frames=10, with_audio=True, audio_codec="pcm_s16le")
    late = shift_timestamps(g.path, tmp_path / "late.mkv", Fraction(3, 2))
    assert _first_times(late) == (1.5, 1.5)
    _process(late, tmp_path / out_name, kind)
    assert audio_codec(tmp_path / out_name) == expected_codec
    video, audio = _first_times(tmp_path / out_name)
    assert video == 1.5
    assert abs(audio - video) < 0.03, f"audio starts at {audio:.3f} s, video at {video:.3f} s"  # encoder priming: 6-21 ms


@pytest.mark.parametrize("out_name,kind,codec", [("out.mkv", "alpha", "aac"), ("out.webm", "alpha", "opus")])
def test_every_audio_track_is_kept_in_order_with_its_language(tmp_path, out_name, kind, codec):
    # e.g. an OBS recording: the mix on track 1, the microphone alone on track 2
    g = make_video(tmp_path / "a.mkv", n_frames=10, with_audio=True, audio_rate=48000)
    mic = make_video(tmp_path / "b.mkv", n_frames=10, with_audio=True, audio_rate=44100, audio_seconds=0.2)
    src = merge_audio(g.path, [mic.path], tmp_path / "two.mkv", ["eng", "fra"])
    _process(src, tmp_path / out_name, kind)
    with av.open(str(tmp_path / out_name)) as c:
        tracks = [(s.codec_context.name, s.metadata.get("language")) for s in c.streams.audio]
        rates = [s.codec_context.sample_rate for s in c.streams.audio]
    assert tracks == [(codec, "eng"), (codec, "fra")]
    if codec == "aac":  # copied: each track as it was
        assert rates == [48000, 44100]
    for track, seconds in ((0, g.audio_duration), (1, 0.2)):
        assert abs(audio_duration(tmp_path / out_name, track) - seconds) < 1 / 25, track


@pytest.mark.parametrize("out_name,kind", [("out.mov", "alpha"), ("out.mkv", "alpha")])
def test_a_mov_sources_track_names_are_kept(tmp_path, out_name, kind):
    # a camera's or an edit's MOV names its tracks ("Boom", "Lav 1") in 'name' atoms, which FFmpeg reads as
    # "name", not "title": every output lost them, so the editor's tracks came back unnamed
    g = make_video(tmp_path / "a.mp4", n_frames=6, with_audio=True)
    lav = make_video(tmp_path / "b.mp4", n_frames=6, with_audio=True)
    src = merge_audio(g.path, [lav.path], tmp_path / "two.mov", ["eng", "eng"], titles=["Boom", "Lav 1"])
    _process(src, tmp_path / out_name, kind)
    with av.open(str(tmp_path / out_name)) as c:
        names = [s.metadata.get("title") or s.metadata.get("name") for s in c.streams.audio]
    assert names == ["Boom", "Lav 1"]


@pytest.mark.parametrize("out_name,kind", [("out.mkv", "alpha"), ("out.mp4", "rgb"), ("out.webm", "alpha")])
def test_the_default_audio_track_stays_the_default(tmp_path, out_name, kind):
    # an OBS take with the desktop mix on track 2 flagged default: players must still pick it, not the
    # microphone (MP4 flagged the first track, Matroska none; the copied streams had no flags)
    g = make_video(tmp_path / "a.mkv", n_frames=6, with_audio=True)
    mic = make_video(tmp_path / "b.mkv", n_frames=6, with_audio=True)
    src = merge_audio(g.path, [mic.path], tmp_path / "two.mkv", ["eng", "jpn"], default=1)
    _process(src, tmp_path / out_name, kind)
    with av.open(str(tmp_path / out_name)) as c:
        flags = [(s.metadata.get("language"), bool(s.disposition & av.stream.Disposition.default)) for s in c.streams.audio]
        picture = c.streams.video[0].disposition
    assert flags == [("eng", False), ("jpn", True)]
    assert picture & av.stream.Disposition.default  # the picture too (Matroska flagged it not default)


def test_damaged_audio_packets_become_silence_and_the_video_goes_on(tmp_path, caplog):
    g = make_video(tmp_path / "in.mov", n_frames=20, with_audio=True, audio_codec="aac")
    bad = tmp_path / "bad.mov"
    damage_packet(g.path, bad, 3, length=16, kind="audio")
    for index in (4, 5):
        damage_packet(bad, bad, index, length=16, kind="audio")
    with caplog.at_level("WARNING", logger="birefvid"):
        info = _process(bad, tmp_path / "out.webm", "alpha")  # AAC -> Opus: every packet is decoded
    assert "an audio packet at" in caplog.text and "silence in its place" in caplog.text
    with av.open(str(tmp_path / "out.webm")) as c:
        assert len(list(c.decode(video=0))) == info.frame_count == 20
    assert abs(audio_duration(tmp_path / "out.webm") - g.audio_duration) < 1 / 25  # the gap is filled: no drift


def _with_surround(path, layout: str, seconds: float = 0.4, level: int = 8000):
    """A 64x48 video with PCM audio in ``layout`` (e.g. a film's 5.1(side), as AC-3 and DTS carry it): the same tone,
    of peak ``level`` (16-bit), in every channel."""
    g = make_video(path.with_name("video_only.mov"), n_frames=10, with_audio=False)
    rate, channels = 48000, av.AudioLayout(layout).nb_channels
    with av.open(str(g.path)) as src, av.open(str(path), "w") as out:
        video = out.add_stream_from_template(src.streams.video[0])
        audio = out.add_stream("pcm_s16le", rate=rate)
        audio.codec_context.layout = layout
        for packet in src.demux(video=0):
            if packet.size:
                packet.stream = video
                out.mux(packet)
        n = int(seconds * rate)
        tone = (np.sin(2 * np.pi * 440 * np.arange(n) / rate) * level).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(tone, channels)[None], format="s16", layout=layout)
        frame.sample_rate, frame.pts = rate, 0
        out.mux(audio.encode(frame) + audio.encode(None))
    return path


def _with_audio_gaps(path, gaps=((0.2, 0.4), (0.5, 0.7)), beep_at: float = 1.0, seconds: float = 1.4, layout="mono", codec="pcm_s16le"):
    """A 64x48 video with audio (16-bit PCM by default) that has no packets in each of ``gaps`` (a recording whose
    sound dropped out) and a 10 ms beep at ``beep_at`` s, after them; the video has a frame every 40 ms throughout."""
    g = make_video(path.with_name("video_only.mkv"), n_frames=int(seconds * 25), with_audio=False)
    rate, step, channels = 48000, 1024, av.AudioLayout(layout).nb_channels
    t = np.arange(int(seconds * rate)) / rate
    beep = np.repeat(np.sin(2 * np.pi * 1000 * t) * 0.6 * ((t >= beep_at) & (t < beep_at + 0.01)), channels).astype(np.float32)
    with av.open(str(g.path)) as src, av.open(str(path), "w") as out:
        video = out.add_stream_from_template(src.streams.video[0])
        audio = out.add_stream(codec, rate=rate)
        audio.codec_context.layout = layout
        for packet in src.demux(video=0):
            if packet.size:
                packet.stream = video
                out.mux(packet)
        for start in range(0, len(t), step):
            if any(a * rate <= start < b * rate for a, b in gaps):
                continue
            frame = av.AudioFrame.from_ndarray(beep[None, start * channels : (start + step) * channels], format="flt", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    return path


def _beep_time(path) -> float:
    """Seconds at which the output's first audio track first gets loud."""
    with av.open(str(path)) as c:
        for frame in c.decode(audio=0):
            channels = frame.layout.nb_channels
            packed = av.AudioResampler(format="flt", layout=frame.layout, rate=frame.sample_rate).resample(frame)[0]  # PyAV 18 crashes
            loud = np.nonzero(np.abs(packed.to_ndarray().reshape(-1, channels)).max(axis=1) > 0.3)[0]  # on planar 7.1's to_ndarray
            if loud.size:
                return float(frame.pts * frame.time_base) + loud[0] / frame.sample_rate
    raise AssertionError(f"no beep in {path}")


@pytest.mark.parametrize("out_name,kind,layout,codec", [
    ("out.mp4", "rgb", "mono", "pcm_s16le"), ("out.webm", "alpha", "mono", "pcm_s16le"), ("out.mov", "alpha", "mono", "pcm_s16le"),
    ("out.webm", "alpha", "7.1", "aac"),  # planar 7.1's silence crashed PyAV 18 (a segfault) where a plane past the 8th was filled
    ("out.mp4", "rgb", "mono", "pcm_u8"), ("out.mov", "alpha", "mono", "pcm_u8"),  # 8-bit PCM is silent at 128, not 0 (full scale)
])
def test_a_gap_in_the_audio_is_filled_so_what_follows_stays_in_sync(tmp_path, caplog, out_name, kind, layout, codec):
    # re-encoded audio was one continuous run of samples, and MOV plays copied PCM back to back: the beep
    # after two dropouts of 0.2 s played 0.4 s early
    src = _with_audio_gaps(tmp_path / "dropout.mkv", layout=layout, codec=codec)
    with caplog.at_level("WARNING", logger="birefvid"):
        _process(src, tmp_path / out_name, kind)
    assert abs(_beep_time(tmp_path / out_name) - 1.0) < 0.002
    assert caplog.text.count("no sound from") == 1 and "had 2 gaps in its sound" in caplog.text  # the first, then a count
    assert abs(audio_duration(tmp_path / out_name) - 1.4) < 0.03  # encoder padding at most


def _with_audio_jump(path, jump: float = 600.0):
    """A 1.4 s 64x48 video with mono 16-bit PCM whose timestamps jump ``jump`` s forward at 0.512 s (a broadcast's
    clock glitch: the sound goes on, its times do not), with a 10 ms beep 0.5 s after the jump."""
    g = make_video(path.with_name("video_only.mkv"), n_frames=35, with_audio=False)
    rate, step = 48000, 1024
    with av.open(str(g.path)) as src, av.open(str(path), "w") as out:
        video = out.add_stream_from_template(src.streams.video[0])
        audio = out.add_stream("pcm_s16le", rate=rate)
        audio.codec_context.layout = "mono"
        for packet in src.demux(video=0):
            if packet.size:
                packet.stream = video
                out.mux(packet)
        for i, start in enumerate(list(range(0, 24000, step)) + list(range(int((0.5 + jump) * rate), int((1.4 + jump) * rate), step))):
            t = (start + np.arange(step)) / rate
            beep = np.sin(2 * np.pi * 1000 * t) * 0.6 * ((t >= jump + 1.0) & (t < jump + 1.01))
            frame = av.AudioFrame.from_ndarray(beep[None].astype(np.float32), format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    return path


@pytest.mark.parametrize("out_name,kind", [("out.mp4", "rgb"), ("out.mov", "alpha")])  # re-encoded; PCM copied into MOV
def test_a_jump_of_the_audio_clock_past_the_video_is_no_gap_to_fill(tmp_path, caplog, out_name, kind):
    # a 1.4 s video whose sound's timestamps jumped 10 minutes got 10 minutes of silence (half an hour: 346 MB,
    # 1.5 GB of memory for the one PCM packet), the rest of its sound after it
    src = _with_audio_jump(tmp_path / "glitch.mkv")
    with caplog.at_level("WARNING", logger="birefvid"):
        _process(src, tmp_path / out_name, kind)
    assert audio_duration(tmp_path / out_name) < 1.5
    assert abs(_beep_time(tmp_path / out_name) - 1.012) < 0.005  # the sound after the jump right after the sound before
    assert "jump 599.988 s forward at 0.512 s, past the video's end" in caplog.text and "no sound from" not in caplog.text


@pytest.mark.parametrize("out_name,kind,codec", [("out.mp4", "rgb", "aac"), ("out.webm", "alpha", "opus")])
def test_surround_audio_stays_surround_when_reencoded(tmp_path, out_name, kind, codec):
    src = _with_surround(tmp_path / "film.mov", "5.1(side)")  # libopus refuses 5.1(side): it gets 5.1
    _process(src, tmp_path / out_name, kind)
    with av.open(str(tmp_path / out_name)) as c:
        audio = c.streams.audio[0]
        assert audio.codec_context.name == codec and audio.codec_context.channels == 6


def test_audio_mixed_down_for_the_encoder_does_not_clip(tmp_path, caplog):
    """A 22.2 broadcast's 24 channels, more than AAC carries, are mixed down to stereo: a tone at half scale in every
    channel came out at 2.0 (AAC takes float samples, which FFmpeg's mix does not scale), clipped by every player."""
    src = _with_surround(tmp_path / "nhk.mkv", "22.2", level=16384)  # Matroska's PCM: "24 channels", no layout named
    with caplog.at_level(logging.WARNING, logger="birefvid"):
        _process(src, tmp_path / "out.mp4", "rgb")
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.audio[0].codec_context.layout.name == "stereo"
        peak = max(float(np.abs(frame.to_ndarray()).max()) for frame in c.decode(audio=0))
    assert 0.4 < peak < 0.6, peak  # the tone's own level: every channel has it in phase
    assert "aac cannot carry its 24 channels audio; mixed down to stereo (scaled so that it cannot clip)" in caplog.text


def _peaks(path) -> list[float]:
    """The largest sample of each channel of ``path``'s first audio track (full scale 1.0)."""
    with av.open(str(path)) as c:
        return np.max([np.abs(frame.to_ndarray()).max(axis=1) for frame in c.decode(audio=0)], axis=0).tolist()


@pytest.mark.parametrize("channels", [3, 4])
def test_channels_of_no_stated_order_are_carried_one_to_one(tmp_path, channels):
    """An MKV's PCM (or a WAV without a channel mask) names no channel ("4 channels"). Into AAC the resampler read the
    channels as FFmpeg guesses them (2.1, 4.0) and mixed that guess into the layout the encoder takes (3.0, quad): the
    third of 3 channels (read as LFE) was silent, the third of 4 was folded into the front pair at a quarter of its level."""
    import subprocess

    from system_tools import need_binary

    src = tmp_path / "recorder.mkv"
    sound = "|".join("0.5*sin(2*PI*440*t)" if i == 2 else "0" for i in range(channels))  # only the third channel
    subprocess.run([need_binary("ffmpeg", "ffmpeg"), "-v", "error", "-f", "lavfi", "-i", "color=c=red:size=64x48:rate=25:d=0.4",
                    "-f", "lavfi", "-i", f"aevalsrc={sound}:s=48000:d=0.4", "-c:v", "mpeg4", "-c:a", "pcm_s16le", str(src)],
                   check=True)  # fmt: skip
    with av.open(str(src)) as c:
        assert c.streams.audio[0].codec_context.layout.name == f"{channels} channels"  # no order stated
    _process(src, tmp_path / "out.mp4", "rgb")
    peaks = _peaks(tmp_path / "out.mp4")
    assert len(peaks) == channels
    assert peaks[2] > 0.35, peaks  # the third channel's tone, in the third channel (AAC's overshoot allowed)
    assert max(peaks[:2] + peaks[3:]) < 0.05, peaks  # and nowhere else


def test_copy_is_bit_exact(tmp_path):
    g = make_video(tmp_path / "in.mp4", n_frames=8)
    _process(g.path, tmp_path / "out.mov")

    def payloads(path):
        with av.open(str(path)) as c:
            return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]

    assert payloads(tmp_path / "out.mov") == payloads(g.path)


@pytest.mark.parametrize("out_name", ["out.mkv", "out.webm", "out.mov"])
def test_sound_an_edit_list_hides_stays_hidden(tmp_path, out_name):
    # `ffmpeg -ss T -c copy` keeps the sound before the cut behind the MP4's edit list (here 0.4 s); copied into
    # Matroska, which has no edit list, it was written at negative times and played 0.4 s ahead of the picture
    g = make_video(tmp_path / "full.mp4", n_frames=20, audio_seconds=0.8)
    cut = hide_leading_frames(g.path, tmp_path / "cut.mp4", 10, 25)

    def packets(path):
        with av.open(str(path)) as c:
            return [(float(p.pts * p.time_base), bytes(p), p.is_discard) for p in c.demux(c.streams.audio[0]) if p.size]

    source = packets(cut)
    hidden = sum(d for _, _, d in source)
    assert hidden >= 10  # 0.4 s of 21 ms AAC frames
    _process(cut, tmp_path / out_name)
    got = packets(tmp_path / out_name)
    if out_name.endswith(".webm"):  # Opus, re-encoded from where the sound is shown
        assert got[0][0] > -0.03
        return
    if out_name.endswith(".mov"):  # MOV keeps every packet, its own edit list hiding them as the source's did
        assert [(data, d) for _, data, d in got] == [(data, d) for _, data, d in source]
        return
    # the shown packets, bit-exact, after one pre-roll packet (the decoder's warm-up, as AAC's priming)
    assert [data for _, data, _ in got] == [data for _, data, _ in source[hidden - 1:]]
    assert got[0][0] == pytest.approx(source[hidden - 1][0], abs=0.002) and got[0][0] > -0.05


@pytest.mark.parametrize("src_name,codec,out_name", [
    ("in.mov", "pcm_s32le", "out.mov"),  # a 32-bit master
    ("in.mkv", "pcm_f64le", "out.mkv"),
    ("in.mov", "pcm_s24be", "out.mkv"),
    ("in.mkv", "mp2", "out.mov"),  # a broadcast's sound
    ("in.mp4", "mp3", "out.mov"),  # MP3, whose decoder PyAV names mp3float: it was re-encoded to AAC everywhere
    ("in.avi", "mp3", "out.mkv"),
])
def test_pcm_and_broadcast_audio_are_copied_bit_exact_where_the_container_holds_them(tmp_path, src_name, codec, out_name):
    # they were re-encoded to 128 kbit/s AAC: a 32-bit or float master lost its resolution
    g = make_video(tmp_path / src_name, n_frames=4, audio_codec=codec)

    def payloads(path):
        with av.open(str(path)) as c:
            return c.streams.audio[0].codec_context.name, [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]

    _process(g.path, tmp_path / out_name)
    assert payloads(tmp_path / out_name) == payloads(g.path)


def test_lossless_audio_made_lossy_says_so_and_where_it_is_kept(tmp_path, caplog):
    # a 24-bit master became AAC in an .mp4 without a word
    g = make_video(tmp_path / "in.mov", n_frames=3, audio_codec="pcm_s24le")
    aac = make_video(tmp_path / "aac.mp4", n_frames=3)
    with caplog.at_level(logging.WARNING, logger="birefvid"):
        _process(aac.path, tmp_path / "fine.webm")  # lossy to lossy: as documented, no warning
        assert not caplog.text
        _process(g.path, tmp_path / "out.mp4", "rgb")
    assert "(pcm_s24le) is re-encoded to aac for .mp4, which is lossy; write .mov or .mkv to keep it bit-exact" in caplog.text


def test_audio_off_or_absent(tmp_path):
    g = make_video(tmp_path / "in.mp4", n_frames=4)
    _process(g.path, tmp_path / "quiet.mov", audio=False)
    assert audio_codec(tmp_path / "quiet.mov") is None
    silent = make_video(tmp_path / "silent.mp4", n_frames=4, with_audio=False)
    _process(silent.path, tmp_path / "out.mov")
    assert audio_codec(tmp_path / "out.mov") is None


def test_png_sequence_drops_audio_with_warning(tmp_path, caplog):
    g = make_video(tmp_path / "in.mp4", n_frames=3)
    with caplog.at_level(logging.WARNING, logger="birefvid.io"):
        _process(g.path, tmp_path / "frames")
    assert f"{tmp_path / 'frames'}: an image sequence cannot hold audio" in caplog.text  # which output, when --also gives several
    assert len(listdir(tmp_path / "frames")) == 3


def test_audio_is_interleaved_progressively(tmp_path, monkeypatch):
    """Audio packets are muxed as video advances, never far ahead of the video written so far."""
    import birefvid.io.interleave as interleave

    monkeypatch.setattr(interleave, "LEAD_S", 0.05)  # the clip is shorter than the real lead
    g = make_video(tmp_path / "in.mkv", n_frames=12, with_audio=True)
    with open_source(g.path) as src:
        info = src.info
        frames = list(src)
    sink = open_sink(tmp_path / "out.mkv", kind="rgb", info=info, audio_from=str(g.path))
    track = sink._companions[0].tracks[0]  # white-box: the muxed position after each frame
    ahead = []
    with sink:
        for f in frames:
            sink.write(f.image[None], [f.pts])
            if track._pending is not None:
                ahead.append(track._time(track._pending) - float(f.pts * f.time_base))
    assert len(ahead) >= 8  # audio was still pending, i.e. not all muxed up front
    assert max(ahead) <= 0.05 + 0.03  # lead + one AAC packet
    assert abs(audio_duration(tmp_path / "out.mkv") - audio_duration(g.path)) <= 1 / 25


def _repeat_an_audio_timestamp(path, out, at: int = 6):
    """Remux ``path`` into Matroska with audio packet ``at`` and all after it moved back one packet, so one dts
    repeats: what ``ffmpeg -stream_loop N -c copy`` writes at each loop."""
    with av.open(str(path)) as src, av.open(str(out), "w") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        seen, step = 0, None
        for packet in src.demux():
            if packet.size == 0:
                continue
            if packet.stream.type == "audio":
                step = step or packet.duration
                if seen >= at:
                    packet.pts -= step
                    packet.dts -= step
                seen += 1
            packet.stream = streams[packet.stream.index]
            dst.mux(packet)
    return out


@pytest.mark.parametrize("out_name,kind", [("out.mov", "alpha"), ("out.mp4", "rgb")])
def test_repeated_audio_timestamps_are_moved_on_as_ffmpeg_does(tmp_path, caplog, out_name, kind):
    g = make_video(tmp_path / "in.mov", n_frames=20, with_audio=True, audio_codec="aac")
    src = _repeat_an_audio_timestamp(g.path, tmp_path / "looped.mkv")
    with caplog.at_level("WARNING", logger="birefvid"):
        _process(src, tmp_path / out_name, kind)  # MOV and MP4 refused the repeated dts: the run ended
    assert "timestamps do not increase" in caplog.text
    with av.open(str(src)) as a, av.open(str(tmp_path / out_name)) as b:
        count = [sum(1 for p in c.demux(c.streams.audio[0]) if p.size) for c in (a, b)]
        dts = [p.dts for p in b.demux(b.streams.audio[0]) if p.size]
    assert count[0] == count[1] > 6  # every packet copied
    assert all(x < y for x, y in zip(dts, dts[1:]))


def _audio_packets(path) -> list[int]:
    """The pts of ``path``'s audio packets, in its time base."""
    with av.open(str(path)) as c:
        return [p.pts for p in c.demux(c.streams.audio[0]) if p.size]


@pytest.mark.parametrize("out_name", ["out.mkv", "out.mov"])
def test_sound_of_a_ts_cut_off_with_stuffing_after_it_is_kept_to_the_cut(tmp_path, out_name):
    """A TS cut off mid-packet with 0xFF stuffing after it (a card's erased blocks): the demuxer answers EAGAIN, which
    ffmpeg reads past. The video was read on past it, but the sound's reader was not: process failed with 'writing the
    sound or subtitles of out.mkv up to 2.840 s failed: [Errno 11] Resource temporarily unavailable', nothing written.
    The sound is kept to the cut, as the same file without the stuffing keeps it, at the same times."""
    need_binary("ffmpeg", "ffmpeg")
    stuffed, cut = stuffed_ts(ts_with_sound(tmp_path / "rec.ts"), tmp_path / "stuffed.ts")
    kept = {}
    for src in (stuffed, cut):
        _process(src, tmp_path / f"{src.stem}-{out_name}", "alpha")
        kept[src.name] = _audio_packets(tmp_path / f"{src.stem}-{out_name}")
    assert kept[stuffed.name] == kept[cut.name] and len(kept[cut.name]) == len(_audio_packets(cut)) > 40, kept
