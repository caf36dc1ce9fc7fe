"""Sources whose format changes part-way: sound from mono to stereo or 48 to 44.1 kHz at an ad break, a picture
of another size or shape at a splice. Each piece is made by ffmpeg and the pieces joined by its concat demuxer,
as a broadcast recording or an edited file is."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from birefvid.api import process_video
from media import audio_duration, read_alpha, read_video
from process_fixtures import red_key_segmenter
from system_tools import need_binary

BEEP_AT = 0.5  # seconds into the second piece
LOUD = 0.4  # a sample above this is the beep (the first piece's tone stays at 0.1)


def _ffmpeg(*args: str) -> None:
    subprocess.run([need_binary("ffmpeg", "ffmpeg"), "-v", "error", "-y", *args], check=True)


def _piece(path: Path, size: tuple[int, int], sound: str, *, colour: str = "red", seconds: float = 1.0, gop: int = 25,
           sar: str = "1", audio_codec: str = "aac") -> Path:  # fmt: skip
    """An MPEG-TS piece of ``seconds``: a flat ``colour`` picture of ``size`` and pixel shape ``sar`` (H.264) and
    ``sound`` (an aevalsrc, in ``audio_codec``)."""
    _ffmpeg("-f", "lavfi", "-i", f"color=c={colour}:size={size[0]}x{size[1]}:rate=25:duration={seconds},setsar={sar}",
            "-f", "lavfi", "-i", f"aevalsrc={sound}:d={seconds}",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", str(gop), "-c:a", audio_codec, "-f", "mpegts", str(path))  # fmt: skip
    return path


def _joined(out: Path, *pieces: Path) -> Path:
    """``pieces`` one after another, as ffmpeg's concat demuxer joins them (packets copied, timestamps continued)."""
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{p}'\n" for p in pieces))
    _ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(out))
    return out


def _beep_time(path: Path) -> float:
    """Seconds (the file's own clock) of the first sample louder than ``LOUD`` in any channel."""
    with av.open(str(path)) as c:
        for frame in c.decode(audio=0):
            data = np.abs(frame.to_ndarray())  # planar: (channels, samples); packed: (1, samples * channels)
            samples = data.max(axis=0) if frame.format.is_planar else data.reshape(frame.samples, -1).max(axis=1)
            loud = np.flatnonzero(samples > LOUD)
            if loud.size:
                return float(frame.pts * frame.time_base) + loud[0] / frame.sample_rate
    raise AssertionError(f"no beep in {path}")


def test_copied_sound_whose_rate_changes_midway_is_warned_of(tmp_path, caplog):
    """AAC copied from an MPEG-TS into MKV keeps its frames, but MKV holds one rate a track: the 44.1 kHz part played
    at 48 kHz, 9% fast, and nothing said so."""
    first = _piece(tmp_path / "a.ts", (64, 48), f"{_QUIET_MONO}:s=48000")
    beeps = _piece(tmp_path / "b.ts", (64, 48), f"{_BEEP}|{_BEEP}:s=44100")
    src = _joined(tmp_path / "joined.ts", first, beeps)
    with caplog.at_level(logging.WARNING, logger="birefvid"):
        process_video(src, tmp_path / "out.mkv", kind="green", segmenter=red_key_segmenter())
    said = [r.getMessage() for r in caplog.records if "audio track 1 changes" in r.getMessage()]
    assert len(said) == 1 and "from 48000 Hz, 1 channel(s) to 44100 Hz, 2 channel(s)" in said[0], said
    assert "players play the rest at 48000 Hz, out of step with the pictures. Write .webm" in said[0]


def _first_stereo(path: Path) -> float:
    """Seconds (the file's own clock) where the first stereo sound starts in ``path``."""
    with av.open(str(path)) as c:
        return next(float(f.pts * f.time_base) for f in c.decode(audio=0) if f.layout.nb_channels == 2)


def _video_span(path: Path) -> float:
    """Seconds from the first picture's start to the last one's end."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        times = [float(f.pts * f.time_base) for f in c.decode(stream)]
    return times[-1] - times[0] + 1 / 25


_QUIET_MONO = "0.1*sin(2*PI*440*t)"
_BEEP = f"if(between(t\\,{BEEP_AT}\\,{BEEP_AT + 0.05})\\,0.8*sin(2*PI*1000*t)\\,0)"


@pytest.mark.parametrize("second", [f"{_BEEP}|{_BEEP}:s=48000", f"{_BEEP}|{_BEEP}:s=44100"], ids=["stereo", "stereo-44k"])
def test_sound_that_changes_layout_or_rate_midway_is_resampled_to_the_first(tmp_path, caplog, second):
    """PyAV's encoder refused the changed frames ("Frame does not match AudioResampler setup") and the whole run failed."""
    first = _piece(tmp_path / "a.ts", (64, 48), f"{_QUIET_MONO}:s=48000")
    beeps = _piece(tmp_path / "b.ts", (64, 48), second)
    back = _piece(tmp_path / "c.ts", (64, 48), f"{_QUIET_MONO}:s=48000")  # and back after the ad
    src = _joined(tmp_path / "joined.ts", first, beeps, back)
    out = tmp_path / "out.webm"  # Opus: the sound is re-encoded
    with caplog.at_level(logging.WARNING, logger="birefvid"):
        process_video(src, out, kind="alpha", segmenter=red_key_segmenter())
    said = [r.getMessage() for r in caplog.records if "changes from" in r.getMessage()]
    assert len(said) == 1 and "changes from mono 48000 Hz to stereo" in said[0] and "resampled to mono 48000 Hz" in said[0], said
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.layout.name == "mono"
    # where the beep is: where the stereo piece starts in the joined file, plus where it is in that piece (the joined
    # file's own timestamps of 44.1 kHz sound count 48 kHz frames, 2 ms short each, then jump to catch up)
    beep = _first_stereo(src) + _beep_time(beeps) - _first_stereo(beeps)
    assert abs(_beep_time(out) - beep) <= 0.005, (_beep_time(out), beep)
    assert abs(audio_duration(out) - _video_span(out)) <= 0.05, (audio_duration(out), _video_span(out))


def _peak(path: Path) -> float:
    """The largest sample of ``path``'s first audio track, full scale 1.0 (mono or stereo: PyAV reads them safely)."""
    with av.open(str(path)) as c:
        return max(float(np.abs(frame.to_ndarray()).max()) for frame in c.decode(audio=0))


def _tone(channels: int, level: float) -> str:
    """An aevalsrc of the same 440 Hz tone at ``level`` in each of ``channels`` channels."""
    return "|".join([f"{level}*sin(2*PI*440*t)"] * channels)


@pytest.mark.parametrize("first, second, codec, out_name, kind", [
    ("mono", "stereo", "mp3", "out.webm", "alpha"),  # MP3 (decoded to float: 16-bit MP2 was scaled already)
    ("stereo", "5.1", "ac3", "out.webm", "alpha"),  # a film's AC-3 5.1 after a stereo trailer (AAC's own overshoots)
], ids=["stereo-into-mono", "5.1-into-stereo"])  # fmt: skip
def test_sound_mixed_down_midway_does_not_clip(tmp_path, first, second, codec, out_name, kind):
    """Channels mixed down were summed without being scaled: a tone at 0.5 in every channel of 5.1 became 1.2 in stereo,
    stereo at 0.8 became 1.13 in mono, past full scale (AAC kept it: players clip it; Opus soft-clipped it, distorted).
    They are mixed as ``ffmpeg`` mixes into 16-bit sound: scaled so that no sum passes full scale."""
    channels, level = {"mono": 1, "stereo": 2, "5.1": 6}, 0.5 if second == "5.1" else 0.8
    quiet = _piece(tmp_path / "a.ts", (64, 48), f"{_tone(channels[first], 0.1)}:c={first}:s=48000", audio_codec=codec)
    loud = _piece(tmp_path / "b.ts", (64, 48), f"{_tone(channels[second], level)}:c={second}:s=48000", audio_codec=codec)
    src = _joined(tmp_path / "joined.ts", quiet, loud)
    out = tmp_path / out_name
    process_video(src, out, kind=kind, segmenter=red_key_segmenter())
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.layout.name == first
    peak = _peak(out)  # the same tone in every channel stays at its level, give or take the codecs
    assert level * 0.8 < peak < level * 1.15, peak


@pytest.mark.parametrize("second, bars", [((48, 36), 8), ((32, 18), 0)], ids=["4:3-in-16:9", "same-shape"])
def test_a_picture_of_another_shape_midway_keeps_its_shape_inside_bars(tmp_path, caplog, second, bars):
    """A 4:3 piece spliced into a 16:9 recording was stretched to 16:9 without a word; a piece of the same shape
    at another size (a stream's bitrate ladder) is still scaled to the first size."""
    first = _piece(tmp_path / "a.ts", (64, 36), f"{_QUIET_MONO}:s=48000")
    other = _piece(tmp_path / "b.ts", second, f"{_QUIET_MONO}:s=48000")
    src = _joined(tmp_path / "spliced.ts", first, other)
    out = tmp_path / "cut.mkv"  # FFV1 with alpha: lossless, so the bars can be read exactly
    with caplog.at_level(logging.WARNING, logger="birefvid"):
        process_video(src, out, kind="alpha", segmenter=red_key_segmenter())  # red: all subject
    said = [r.getMessage() for r in caplog.records if "picture size changes" in r.getMessage()]
    assert len(said) == 1, said
    assert ("the shape is kept, scaled to 48x36 inside 64x36 with black bars" in said[0]) == bool(bars), said[0]
    _, alpha, _ = read_alpha(out)
    assert alpha.shape == (50, 36, 64)  # every frame, at the first size
    assert (alpha[:25] == 255).all()
    inside = alpha[25:, :, bars + 1 : 64 - bars - 1]
    assert (inside == 255).all()  # the picture, all of it: not stretched past the bars, not cut
    if bars:
        assert not alpha[25:, :, :bars].any() and not alpha[25:, :, 64 - bars :].any()  # transparent bars
    rgb = read_video(out, "rgb24").images[-1]
    assert (rgb[:, bars + 1 : 64 - bars - 1, 0] > 200).all()  # still red where it was red


@pytest.mark.parametrize("kind, option, colour", [("green", "key_color", (0, 255, 0)), ("composite", "background", (51, 102, 204)),
                                                   ("alpha", None, (0,))])  # fmt: skip
def test_the_bars_of_another_shape_are_exactly_the_key_colour_or_background(tmp_path, kind, option, colour):
    """The bars fitted around a picture of another shape have alpha 0, so green and composite outputs show exactly the
    key colour or the background there, not a blend with the bars' black, and alpha exactly 0, whatever the model says
    of them (here: subject everywhere); checked in a lossless PNG sequence."""
    first = _piece(tmp_path / "a.ts", (64, 36), f"{_QUIET_MONO}:s=48000")
    other = _piece(tmp_path / "b.ts", (48, 36), f"{_QUIET_MONO}:s=48000")
    src = _joined(tmp_path / "spliced.ts", first, other)
    import torch

    class Everything(torch.nn.Module):  # the whole picture is subject, bars too: only their alpha 0 keeps them out
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.full_like(x[:, :1], 40.0)

    chosen = {} if option is None else {option: "#%02x%02x%02x" % colour}
    process_video(src, tmp_path / "out", kind=kind, segmenter=red_key_segmenter(Everything()), **chosen)
    pictures = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "out").glob("*.png"))]
    assert len(pictures) == 50
    for picture in pictures[25:]:  # 48x36 inside 64x36: 8 columns of bars each side
        seen = picture[..., 3:] if kind == "alpha" else picture[..., :3]
        assert (seen[:, :8] == colour).all() and (seen[:, 56:] == colour).all()
        assert (picture[:, 9:55, 0] > 200).all()  # the red picture inside them
        if kind == "alpha":
            assert (picture[:, 9:55, 3] == 255).all()


def test_batch_chunks_after_a_change_of_shape_keep_it_inside_bars(tmp_path, caplog):
    """Each chunk decodes on its own: one that starts after the splice still fits the pictures to the video's first
    size, and says where it met the other size, not that the size changed at its own first frame."""
    from test_batch_media import MODEL

    from birefvid.cli import main

    first = _piece(tmp_path / "a.ts", (64, 36), f"{_QUIET_MONO}:s=48000", gop=5)
    other = _piece(tmp_path / "b.ts", (48, 36), f"{_QUIET_MONO}:s=48000", gop=5)
    (tmp_path / "in").mkdir()
    joined = _joined(tmp_path / "spliced.ts", first, other)  # MPEG-TS is read whole: MKV is split at its keyframes
    _ffmpeg("-i", str(joined), "-c", "copy", str(tmp_path / "in" / "spliced.mkv"))
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="birefvid"):
        assert main(["batch", str(tmp_path / "in"), "--output-dir", str(out), "--output", "alpha", "--ext", ".mkv",
                     "--chunk-frames", "10", "-q", *MODEL]) == 0  # fmt: skip
    said = [r.getMessage() for r in caplog.records if "picture size changes" in r.getMessage()]
    # chunks of 10 frames: the one of the splice says where it is; those after it, their first frame (2 frames of
    # overlap before their own)
    assert [m.split("48x36 ")[1].split(",")[0] for m in said] == ["at frame 25", "by frame 28", "by frame 38"], said
    _, alpha, _ = read_alpha(out / "spliced.mkv")
    assert alpha.shape == (50, 36, 64)
    assert not alpha[25:, :, :8].any() and not alpha[25:, :, 56:].any()  # transparent bars in every chunk after it
    assert alpha[:25, :, :8].any()


@pytest.mark.parametrize("size, sar, rows", [((48, 36), "4/3", 36), ((64, 36), "4/3", 27)], ids=["same-shape", "wider"])
def test_a_change_of_pixel_shape_midway_is_told_by_the_shape_shown(tmp_path, caplog, size, sar, rows):
    """The shape is what is shown: 48x36 with 4:3 pixels is 16:9, as an HD programme's SD advert (720x576 at 64:45) is,
    and fills the picture (bars there squeezed it); 64x36 with 4:3 pixels is wider and keeps bars above and below."""
    first = _piece(tmp_path / "a.ts", (64, 36), f"{_QUIET_MONO}:s=48000")
    other = _piece(tmp_path / "b.ts", size, f"{_QUIET_MONO}:s=48000", sar=sar)
    src = _joined(tmp_path / "spliced.ts", first, other)
    out = tmp_path / "cut.mkv"
    with caplog.at_level(logging.WARNING, logger="birefvid"):
        process_video(src, out, kind="alpha", segmenter=red_key_segmenter())
    said = [r.getMessage() for r in caplog.records if "picture size changes" in r.getMessage()]
    assert len(said) == 1 and f"to {size[0]}x{size[1]} (pixels 4:3) at frame 25" in said[0], said  # where it is, not where the decoder read it
    _, alpha, _ = read_alpha(out)
    assert alpha.shape == (50, 36, 64) and (alpha[:25] == 255).all()
    top = (36 - rows) // 2
    assert (alpha[25:, top + 1 : top + rows - 1] == 255).all()
    assert not alpha[25:, :top].any() and not alpha[25:, top + rows :].any()
