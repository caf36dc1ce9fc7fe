"""YUV video made from RGB pictures says its matrix: a PNG plate, an APNG, a live recording or stream.

RGB pictures name no YUV matrix, so the output chooses one: BT.709 for HD (1280 wide or more, or taller than 576
lines) and BT.601 (``smpte170m``) below, the matrix players take untagged video of that size as, and it says so in
the stream. Converted with swscale's default BT.601 and left untagged, a 720p plate's H.264 was shown by mpv, VLC,
browsers and QuickTime as BT.709, saturated colours up to 34 levels off.

Each output is decoded by FFmpeg's own ``ffmpeg`` twice, as the two kinds of player read it: by the matrix its tag
names, and by the one its size calls for (a player that ignores the tag). Both must give the source's colours
back on the flat middle of each bar (compression blurs their edges). Two or three frames each: HD frames are big.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from live_media import free_port
from test_live_ts_out import _udp_bound, _wait
from test_process_colours import keep_all  # noqa: F401 (a fixture)

from birefvid.cli import main
from birefvid.io.live_sinks import open_live_sink
from birefvid.io.record_sink import RecordingSink

HD, SD = (1280, 720), (720, 576)
# 100% colour bars over 75% ones: the saturated colours on which BT.601 and BT.709 differ most (~34 levels)
COLOURS = [(255, 255, 255), (255, 255, 0), (0, 255, 255), (0, 255, 0), (255, 0, 255), (255, 0, 0), (0, 0, 255), (16, 16, 16)]
LEVELS = (1.0, 0.75)
# ffprobe's name of a matrix -> the ffmpeg scale filter's
SCALE_MATRIX = {"bt709": "bt709", "smpte170m": "smpte170m", "bt470bg": "bt470"}


def bars(size: tuple[int, int]) -> np.ndarray:
    """An RGB picture (H, W, 3) uint8 of ``COLOURS`` side by side, at full strength above and 75% below."""
    w, h = size
    picture = np.zeros((h, w, 3), np.uint8)
    for row, level in enumerate(LEVELS):
        for col, colour in enumerate(COLOURS):
            x0, x1 = col * w // len(COLOURS), (col + 1) * w // len(COLOURS)
            picture[row * h // 2 : (row + 1) * h // 2, x0:x1] = np.round(np.array(colour) * level)
    return picture


def patch_medians(picture: np.ndarray) -> np.ndarray:
    """The median colour of the middle of each bar (16 bars x RGB), away from the edges 4:2:0 and compression blur."""
    h, w = picture.shape[:2]
    out = []
    for row in range(len(LEVELS)):
        for col in range(len(COLOURS)):
            x0, x1 = col * w // len(COLOURS), (col + 1) * w // len(COLOURS)
            y0, y1 = row * h // 2, (row + 1) * h // 2
            out.append(np.median(picture[y0 + 16 : y1 - 16, x0 + 16 : x1 - 16].reshape(-1, 3), axis=0))
    return np.array(out)


def colour_tags(path: Path) -> dict[str, str]:
    """The video stream's size and colour tags as ffprobe reads them (absent: untagged)."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=width,height,color_space,color_range", "-of", "json", str(path)],
                         capture_output=True, check=True, text=True).stdout  # fmt: skip
    return json.loads(out)["streams"][0]


def shown(path: Path, by: str) -> np.ndarray:
    """The first frame as RGB (H, W, 3) the way a player shows it: ``by="tag"`` by the matrix and range the stream
    names (its size's matrix where it names none, as mpv, VLC and browsers do), ``by="size"`` by the size alone
    (a player that ignores the tag). Converted by FFmpeg's scale filter, told the matrix, not left to guess."""
    tags = colour_tags(path)
    w, h = tags["width"], tags["height"]
    by_size = "bt709" if w >= 1280 or h > 576 else "smpte170m"
    matrix = SCALE_MATRIX.get(tags.get("color_space", ""), by_size) if by == "tag" else by_size
    in_range = "full" if by == "tag" and tags.get("color_range") == "pc" else "tv"
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-vf",
                          f"scale=in_color_matrix={matrix}:in_range={in_range}:out_range=full:flags=accurate_rnd+full_chroma_int", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout  # fmt: skip
    return np.frombuffer(out, np.uint8).reshape(h, w, 3)


def check_players_agree(path: Path, size: tuple[int, int], matrix: str) -> None:
    """``path`` names ``matrix``, limited range, and shows the bars' colours within 2 levels whichever way it is read."""
    tags = colour_tags(path)
    assert (tags.get("color_space"), tags.get("color_range")) == (matrix, "tv"), tags
    want = patch_medians(bars(size))
    for by in ("tag", "size"):
        error = np.abs(patch_medians(shown(path, by)) - want)
        assert error.max() <= 2, f"read by its {by}: up to {error.max():.0f} levels off (bar {error.max(axis=1).argmax()})"


def plate(folder: Path, size: tuple[int, int]) -> Path:
    """Two frames of ``bars`` as a numbered PNG plate."""
    folder.mkdir()
    for n in (1001, 1002):
        cv2.imwrite(str(folder / f"plate.{n}.png"), bars(size)[..., ::-1])
    return folder


def cut(src: Path, out: Path, *options: str) -> None:
    assert main(["process", str(src), "-o", str(out), "--output", "foreground", "--no-foreground", "--smooth", "none", "-q", *options]) == 0


@pytest.mark.parametrize(("size", "name", "options", "matrix"), [
    (HD, "fg.mp4", (), "bt709"),
    (HD, "fg.mov", ("--codec", "prores_ks"), "bt709"),
    (SD, "fg.mp4", (), "smpte170m"),
], ids=["hd-h264", "hd-prores", "sd-h264"])  # fmt: skip
def test_a_png_plates_video_names_its_matrix(tmp_path, keep_all, size, name, options, matrix):
    """``process plate/ -o fg.mp4``: a PNG plate's H.264 or ProRes says its matrix, and every player shows the
    plate's colours. It was converted with BT.601 and left untagged: at HD, players showed it 34 levels off."""
    out = tmp_path / name
    cut(plate(tmp_path / "plate", size), out, *options)
    check_players_agree(out, size, matrix)


def test_a_plate_shrunk_below_hd_is_bt601(tmp_path, keep_all):
    """``--max-size 640`` on a 720p plate: the 640x360 output's matrix is the one its own size calls for, so players
    that ignore the tag agree too; it kept the plate's BT.709, 32 levels off in those."""
    out = tmp_path / "small.mp4"
    cut(plate(tmp_path / "plate", HD), out, "--max-size", "640")
    check_players_agree(out, (640, 360), "smpte170m")


def test_an_apngs_video_names_its_matrix(tmp_path, keep_all):
    """An HD APNG (RGB video FFmpeg reads, which says it is full range): its H.264 is limited-range BT.709, tagged.
    It was converted to full-range BT.601, untagged, which players showed as BT.709."""
    folder = plate(tmp_path / "plate", HD)
    src = tmp_path / "bars.apng"
    subprocess.run(["ffmpeg", "-v", "error", "-framerate", "25", "-start_number", "1001", "-i", str(folder / "plate.%d.png"),
                    "-f", "apng", str(src)], check=True)  # fmt: skip
    out = tmp_path / "fg.mp4"
    cut(src, out)
    check_players_agree(out, HD, "bt709")


@pytest.mark.parametrize(("size", "matrix"), [(HD, "bt709"), (SD, "smpte170m")], ids=["hd", "sd"])
def test_a_live_recording_names_its_matrix(tmp_path, size, matrix):
    """``live --sink rec.mp4``: a recording's pictures are RGB whatever the camera sent; at HD they went into
    H.264 as BT.601, untagged, and a 720p webcam's recording played with its colours shifted."""
    path = tmp_path / "rec.mp4"
    with RecordingSink(path, width=size[0], height=size[1], fps=25, kind="rgb") as sink:
        for i in range(3):
            sink.send(bars(size), i / 25)
    check_players_agree(path, size, matrix)


def test_an_sd_live_stream_is_bt601(tmp_path):
    """``--sink udp://...`` (the H.264 that RTSP, RTMP and MPEG-TS carry) at SD: BT.601 and tagged so, the matrix
    its size calls for, so a player that ignores the tag agrees too; it went out as BT.709 (HD streams were and
    are BT.709, tagged)."""
    size = SD
    port = free_port()
    with open(tmp_path / "ffmpeg.log", "w") as log:
        proc = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "warning", "-i", f"udp://127.0.0.1:{port}?timeout=2000000",
                                 "-map", "0:v", "-c", "copy", str(tmp_path / "got.ts")], stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
    try:
        _wait(lambda: _udp_bound(port) or proc.poll() is not None, 10, "ffmpeg to bind its UDP port")
        with open_live_sink(f"udp://127.0.0.1:{port}", width=size[0], height=size[1], fps=25, kind="rgb") as sink:
            for i in range(3):
                sink.send(bars(size), i / 25)
                time.sleep(0.01)  # paced a little, as live frames are, so the receive buffer never overflows
        assert proc.wait(timeout=20) == 0, (tmp_path / "ffmpeg.log").read_text()
    finally:
        proc.kill()
        proc.wait()
    check_players_agree(tmp_path / "got.ts", size, "smpte170m")
