"""TIFF and OpenEXR image-sequence outputs, as compositors (Nuke, Fusion, After Effects) ask for them: `-o
out/rgba.%04d.tif` writes RGBA TIFFs with straight alpha (8 or 16 bits, as PNGs), `-o out/m.%04d.exr --output mask`
(or `--also mask=...exr`) the matte as one half-float channel, colour into EXR linear light, premultiplied. Each file
is read back by readers other than the ones that wrote it: FFmpeg for the pixels, tifffile for the TIFF tags, and the
EXR header parsed from its bytes."""

from __future__ import annotations

import struct
import subprocess
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from birefvid.api import process_video
from birefvid.cli import main
from birefvid.io.image_sink import ImageSequenceSink
from birefvid.sequence_names import sequence_pattern
from process_fixtures import interior, red_key_segmenter, scene_frame, true_mask, write_scene_images
from system_tools import need_binary

SIZE = (64, 48)
NUMBERS = (1001, 1002, 1003)


@pytest.fixture(scope="module")
def seg():
    return red_key_segmenter()


@pytest.fixture
def plate(tmp_path) -> Path:
    """Three frames `plate.1001.png` ... `plate.1003.png`, a compositor's plate."""
    for number, path in zip(NUMBERS, write_scene_images(tmp_path / "plate", len(NUMBERS), SIZE)):
        path.rename(path.parent / f"plate.{number}.png")
    return tmp_path / "plate"


@pytest.fixture
def run(pvt_b0_weights, red_key):
    """``process`` as typed, with the red-key test module in place of the model it loads (conftest's ``red_key``): these
    tests are about files and their names, and the seeded pvt_v2_b0's load and frames were most of a run's CPU."""

    def _run(*args: object) -> int:
        return main(["process", *map(str, args), "--weights", str(pvt_b0_weights), "--resolution", "64", "--device", "cpu", "-q"])

    return _run


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def decoded(path: Path, pix_fmt: str, channels: int, dtype: str) -> np.ndarray:
    """``path``'s one picture as FFmpeg decodes it, (H, W, channels) of ``dtype``."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"],
                         capture_output=True, check=True, timeout=60).stdout  # fmt: skip
    return np.frombuffer(raw, dtype).reshape(SIZE[1], SIZE[0], channels)


def tiff_tags(path: Path) -> tuple[int, int, tuple[int, ...], int]:
    """(bits a sample, samples a pixel, ExtraSamples, compression) of a TIFF, as tifffile reads its tags."""
    tifffile = pytest.importorskip("tifffile")  # scikit-image's, which pysodmetrics brings
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        return page.bitspersample, page.samplesperpixel, tuple(int(e) for e in page.extrasamples), int(page.compression)


def exr_header(path: Path) -> dict[str, bytes]:
    """An OpenEXR file's header attributes (name -> value bytes), read as the spec lays them out."""
    data = path.read_bytes()
    assert data[:4] == b"\x76\x2f\x31\x01", "not an OpenEXR file"
    at, attributes = 8, {}
    while data[at] != 0:
        name_end = data.index(b"\0", at)
        type_end = data.index(b"\0", name_end + 1)
        (size,) = struct.unpack("<i", data[type_end + 1 : type_end + 5])
        attributes[data[at:name_end].decode()] = data[type_end + 5 : type_end + 5 + size]
        at = type_end + 5 + size
    return attributes


@pytest.mark.parametrize("bit_depth,bits", [(8, 8), (16, 16)])
def test_a_tiff_sequence_is_straight_rgba_in_the_plates_numbers(tmp_path, plate, seg, bit_depth, bits):
    """Straight alpha: a soft edge's pixel keeps the source's colour at full strength (premultiplied, alpha 0.5 would
    halve it); ExtraSamples says so (2, unassociated), which Nuke and Photoshop read as straight; 16 bits with
    `--bit-depth 16`, as a PNG sequence is."""
    out = tmp_path / "out"
    process_video(plate, out / "rgba.%04d.tif", kind="alpha", segmenter=seg, smooth="none", feather=3, foreground=False,
                  bit_depth=bit_depth)  # fmt: skip
    assert names(out) == [f"rgba.{n}.tif" for n in NUMBERS]
    for i, number in enumerate(NUMBERS):
        path = out / f"rgba.{number}.tif"
        assert tiff_tags(path) == (bits, 4, (2,), 5)  # LZW
        picture = decoded(path, "rgba64le", 4, "<u2").astype(np.int64) if bits == 16 else decoded(path, "rgba", 4, "u1").astype(np.int64)
        top = 65535 if bits == 16 else 255
        source = scene_frame(i, SIZE).astype(np.int64) * (top // 255)
        alpha = picture[..., 3]
        half = (alpha > 0.35 * top) & (alpha < 0.65 * top)
        assert half.sum() >= 8, "the feathered edge has pixels of alpha near 0.5"
        assert np.abs(picture[..., :3][half] - source[half]).max() <= top // 255, "colour under a soft edge kept whole"
        fg, bg = interior(true_mask(i, SIZE), margin=6)  # past the feather
        assert alpha[fg].min() >= top - top // 64 and alpha[bg].max() <= top // 64


def test_an_exr_matte_is_one_half_float_channel_exactly_0_and_1(tmp_path, plate, seg):
    """`--output mask` into `m.%04d.exr`: one channel, Y (OpenEXR's gray), half floats, ZIP; the matte 0.0 and 1.0
    exactly where it is clear and solid, and in the plate's numbers."""
    out = tmp_path / "m"
    process_video(plate, out / "m.%04d.exr", kind="mask", segmenter=seg, smooth="none")
    assert names(out) == [f"m.{n}.exr" for n in NUMBERS]
    for i, number in enumerate(NUMBERS):
        path = out / f"m.{number}.exr"
        header = exr_header(path)
        channel, _, pixel_type = header["channels"].partition(b"\0")
        assert channel == b"Y" and struct.unpack("<i", pixel_type[:4])[0] == 1  # one channel list entry: Y, HALF
        assert len(header["channels"]) == len(b"Y\0") + 16 + 1, "one channel"
        assert header["compression"] == b"\x03"  # ZIP_COMPRESSION, 16 scanlines a block
        matte = decoded(path, "grayf32le", 1, "<f4")[..., 0]
        fg, bg = interior(true_mask(i, SIZE))
        assert (matte[fg] == 1.0).all() and (matte[bg] == 0.0).all()
        assert matte.min() >= 0.0 and matte.max() <= 1.0


def test_also_an_exr_matte_beside_a_tiff_fill(tmp_path, plate, seg):
    """The two-file workflow for a compositor: the fill as 16-bit TIFFs, the matte as EXR, both in the plate's numbers."""
    process_video(plate, tmp_path / "fgr" / "fgr.####.tif", kind="foreground", segmenter=seg, smooth="none", bit_depth=16,
                  also=[("mask", str(tmp_path / "pha" / "pha.####.exr"))])  # fmt: skip
    assert names(tmp_path / "fgr") == [f"fgr.{n}.tif" for n in NUMBERS]
    assert names(tmp_path / "pha") == [f"pha.{n}.exr" for n in NUMBERS]
    assert tiff_tags(tmp_path / "fgr" / "fgr.1001.tif") == (16, 3, (), 5)
    matte = decoded(tmp_path / "pha" / "pha.1002.exr", "grayf32le", 1, "<f4")[..., 0]
    fg, bg = interior(true_mask(1, SIZE))
    assert (matte[fg] == 1.0).all() and (matte[bg] == 0.0).all()


def test_an_exr_matte_keeps_the_levels_between(tmp_path):
    """The 8- and 16-bit matte scaled to 0-1, each level within half precision of it (half floats: 11 bits of mantissa)."""
    for dtype, top in ((np.uint8, 255), (np.uint16, 65535)):
        levels = np.linspace(0, top, SIZE[0] * SIZE[1]).round().astype(dtype).reshape(SIZE[1], SIZE[0])
        folder = tmp_path / f"m{top}"
        sink = ImageSequenceSink(folder, "mask", *SIZE, pattern=sequence_pattern(folder / "m.%04d.exr"))
        sink.write(levels[None], [0])
        sink.close()
        matte = decoded(folder / "m.0001.exr", "grayf32le", 1, "<f4")[..., 0]
        want = levels / top
        assert np.abs(matte - want).max() <= 2**-11 and matte[0, 0] == 0.0 and matte[-1, -1] == 1.0


def test_an_exr_matte_level_is_the_nearest_half(tmp_path):
    """Each level is the half float nearest to it, as OpenEXR's own library (Imath's half) and so Nuke write it:
    FFmpeg's encoder cut float32 to half, every level in 0.5-1 (a matte's soft edge and near-solid core) one step
    of 2^-11 low, 65483 of the 65536 16-bit levels off their nearest half and 65534 (0.99998) written as 0.99951."""
    levels = np.arange(65536, dtype=np.uint16)[-SIZE[0] * SIZE[1]:].reshape(SIZE[1], SIZE[0])  # the top levels
    folder = tmp_path / "m"
    sink = ImageSequenceSink(folder, "mask", *SIZE, pattern=sequence_pattern(folder / "m.%04d.exr"))
    sink.write(levels[None], [0])
    sink.close()
    matte = decoded(folder / "m.0001.exr", "grayf32le", 1, "<f4")[..., 0]
    nearest = (levels / 65535.0).astype(np.float16).astype(np.float32)  # numpy's half: round to nearest, ties to even
    assert np.array_equal(matte, nearest), f"{(matte != nearest).sum()} levels off their nearest half"
    assert np.abs(matte - levels / 65535.0).max() <= 2**-12  # half a step of half precision in 0.5-1


def graded_frame(index: int) -> np.ndarray:
    """RGB (H, W, 3): the red-key scene in midtones, where transfer curves differ: a subject R 230 B 40 over R 30
    B 200, green running through every level, so each pixel's linear value checks the curve at its own code."""
    picture = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    subject = true_mask(index, SIZE) > 0
    picture[..., 0] = np.where(subject, 230, 30)
    picture[..., 2] = np.where(subject, 40, 200)
    picture[..., 1] = (np.arange(SIZE[0] * SIZE[1]) * 5 % 256).reshape(SIZE[1], SIZE[0])
    return picture


@pytest.fixture
def graded(tmp_path) -> Path:
    """``graded_frame``s as `g.1001.png`... (8-bit PNGs: sRGB, as every picture file is shown)."""
    folder = tmp_path / "graded"
    folder.mkdir()
    for i, number in enumerate(NUMBERS):
        assert cv2.imwrite(str(folder / f"g.{number}.png"), cv2.cvtColor(graded_frame(i), cv2.COLOR_RGB2BGR))
    return folder


def srgb_to_linear(codes: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1's EOTF, written out here from the standard, not taken from birefvid."""
    v = codes / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def bt709_to_linear(codes: np.ndarray) -> np.ndarray:
    """BT.709's OETF inverted, as Nuke's rec709 colourspace reads video."""
    v = codes / 255.0
    return np.where(v < 0.081, v / 4.5, ((v + 0.099) / 1.099) ** (1 / 0.45))


def exr_rgba(path: Path, channels: int = 4) -> np.ndarray:
    """An RGB(A) EXR's float values (H, W, channels) as FFmpeg decodes them, in R, G, B(, A) order (FFmpeg's planar
    G, B, R, A), no transfer applied (the file's gamma attribute is 1)."""
    pix_fmt = "gbrapf32le" if channels == 4 else "gbrpf32le"
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", pix_fmt, "-"],
                         capture_output=True, check=True, timeout=60).stdout  # fmt: skip
    planes = np.frombuffer(raw, "<f4").reshape(channels, SIZE[1], SIZE[0])
    return np.dstack([planes[2], planes[0], planes[1], *planes[3:]])


def exr_channels(path: Path) -> list[tuple[str, int]]:
    """(name, pixel type) of each channel in the header's list: pixel type 1 is HALF."""
    data, listed = exr_header(path)["channels"], []
    at = 0
    while data[at] != 0:
        end = data.index(b"\0", at)
        listed.append((data[at:end].decode(), struct.unpack("<i", data[end + 1 : end + 5])[0]))
        at = end + 1 + 16
    return listed


def close_in_half(got: np.ndarray, want: np.ndarray) -> bool:
    """Equal within half-float rounding (11 significant bits), and a little for the float32 tables."""
    return bool(np.all(np.abs(got - want) <= np.abs(want) * 2**-10 + 2**-24))


REC709_XY = struct.pack("<8f", 0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)


@pytest.mark.parametrize("bit_depth", ["auto", 8])
def test_an_exr_cutout_is_premultiplied_linear_half_rgba(tmp_path, graded, seg, bit_depth):
    """`-o out/rgba.%04d.exr` of 8-bit PNG plates: R, G, B, A half floats, ZIP; RGB the sRGB values decoded to linear
    light (the sRGB EOTF, as Nuke reads an 8-bit picture) and premultiplied: the source's linear colour where alpha is
    1, 0 where it is 0, alpha x that colour on the feathered edge; chromaticities Rec.709, sRGB's. The soft edge's
    alpha finer than 8 bits' steps (composited at 16 bits: half floats cost the same), unless `--bit-depth 8`."""
    out = tmp_path / "out"
    process_video(graded, out / "rgba.%04d.exr", kind="alpha", segmenter=seg, smooth="none", feather=3, foreground=False,
                  bit_depth=bit_depth)  # fmt: skip
    assert names(out) == [f"rgba.{n}.exr" for n in NUMBERS]
    for i, number in enumerate(NUMBERS):
        path = out / f"rgba.{number}.exr"
        assert exr_channels(path) == [("A", 1), ("B", 1), ("G", 1), ("R", 1)]  # OpenEXR lists them sorted
        header = exr_header(path)
        assert header["compression"] == b"\x03" and header["chromaticities"] == REC709_XY
        picture = exr_rgba(path)
        rgb, alpha = picture[..., :3], picture[..., 3]
        linear = srgb_to_linear(graded_frame(i).astype(np.float64))
        fg, bg = interior(true_mask(i, SIZE), margin=6)
        assert (alpha[fg] == 1.0).all() and close_in_half(rgb[fg], linear[fg]), "solid: the source's colour, linear"
        assert (alpha[bg] == 0.0).all() and (rgb[bg] == 0.0).all(), "clear: premultiplied to nothing"
        edge = (alpha > 0.02) & (alpha < 0.98)
        assert edge.sum() >= 8 and (np.abs(alpha[edge] - 0.5) < 0.15).any(), "the feather has soft pixels"
        # the colour under a soft edge is the source's within one 8-bit level (as the TIFF test), then premultiplied
        step = srgb_to_linear(np.minimum(graded_frame(i).astype(np.float64) + 1, 255)) - linear
        assert np.all(np.abs(rgb[edge] - alpha[edge, None] * linear[edge]) <= alpha[edge, None] * step[edge] + 2**-10)
        assert np.all(rgb <= alpha[..., None] + 2**-10), "premultiplied: no channel above its alpha"
        off_8_bits = np.abs(alpha[edge] * 255 - np.round(alpha[edge] * 255)) > 0.25  # half rounding: 0.12 of a level near 1
        assert off_8_bits.any() == (bit_depth == "auto"), "levels between 8 bits' steps, unless --bit-depth 8"


def test_a_foreground_exr_is_opaque_linear_rgb(tmp_path, graded, seg):
    """`--output foreground` (RVM's fgr, for the two-file workflow): R, G, B only, the whole picture linear light."""
    out = tmp_path / "fgr"
    process_video(graded, out / "fgr.####.exr", kind="foreground", segmenter=seg, smooth="none", foreground=False,
                  also=[("mask", str(tmp_path / "pha" / "pha.####.exr"))])  # fmt: skip
    path = out / "fgr.1002.exr"
    assert exr_channels(path) == [("B", 1), ("G", 1), ("R", 1)]
    assert close_in_half(exr_rgba(path, 3), srgb_to_linear(graded_frame(1).astype(np.float64)))
    assert names(tmp_path / "pha") == [f"pha.{n}.exr" for n in NUMBERS]


def test_an_exr_cutout_beside_an_8_bit_fill_keeps_its_soft_edge(tmp_path, graded, seg):
    """`--also alpha=out/rgba.%04d.exr` beside an 8-bit TIFF: the EXR's alpha is composited at 16 bits all the same."""
    process_video(graded, tmp_path / "fgr" / "fgr.%04d.tif", kind="foreground", segmenter=seg, smooth="none", feather=3,
                  also=[("alpha", str(tmp_path / "rgba" / "rgba.%04d.exr"))])  # fmt: skip
    assert tiff_tags(tmp_path / "fgr" / "fgr.1001.tif")[0] == 8
    alpha = exr_rgba(tmp_path / "rgba" / "rgba.1001.exr")[..., 3]
    edge = (alpha > 0.02) & (alpha < 0.98)
    assert (np.abs(alpha[edge] * 255 - np.round(alpha[edge] * 255)) > 0.25).any(), "levels between 8 bits' steps"


def test_an_exr_of_video_is_linearised_as_video_in_its_primaries(tmp_path, graded, seg):
    """A BT.709-tagged video: its OETF inverted (Nuke's rec709), not sRGB's curve; the chromaticities the video's
    (SMPTE 170M here), so a compositor converts its gamut rightly. RGB FFV1, so decoded pixels are the frames."""
    video = tmp_path / "plate.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-start_number", "1001", "-i", str(graded / "g.%04d.png"), "-c:v", "ffv1",
                    "-pix_fmt", "bgr0", "-color_trc", "bt709", "-color_primaries", "smpte170m", str(video)],
                   check=True, timeout=60)  # fmt: skip
    out = tmp_path / "out"
    process_video(video, out / "fgr.%04d.exr", kind="foreground", segmenter=seg, smooth="none", foreground=False)
    path = out / "fgr.0002.exr"
    assert exr_header(path)["chromaticities"] == struct.pack("<8f", 0.630, 0.340, 0.310, 0.595, 0.155, 0.070, 0.3127, 0.3290)
    codes = graded_frame(1).astype(np.float64)
    got, want = exr_rgba(path, 3), bt709_to_linear(codes)
    assert close_in_half(got, want)
    assert not close_in_half(got, srgb_to_linear(codes)), "the two curves differ at these midtones"


@pytest.mark.parametrize("name,codec", [("plate.mkv", ("-c:v", "ffv1", "-pix_fmt", "bgr0")), ("plate.apng", ("-f", "apng"))],
                         ids=["rgb-ffv1", "apng"])  # fmt: skip
def test_an_exr_of_untagged_rgb_video_is_linearised_as_its_pictures(tmp_path, graded, seg, name, codec):
    """RGB video that names no transfer (an APNG, RGB FFV1, PNG-in-MOV, a GIF: pictures put in a video file) is
    decoded with sRGB's curve, as the same pictures as a PNG plate are and as every viewer shows them. It took the
    BT.709 OETF's inverse of untagged YUV video: in linear light 21% brighter than the plate's EXR at code 128, 53% at 64."""
    video = tmp_path / name
    subprocess.run(["ffmpeg", "-v", "error", "-start_number", "1001", "-i", str(graded / "g.%04d.png"), *codec, str(video)],
                   check=True, timeout=60)  # fmt: skip
    out = tmp_path / "out"
    process_video(video, out / "fgr.%04d.exr", kind="foreground", segmenter=seg, smooth="none", foreground=False)
    assert close_in_half(exr_rgba(out / "fgr.0002.exr", 3), srgb_to_linear(graded_frame(1).astype(np.float64)))


@pytest.mark.parametrize("trc,says", [("smpte2084", "HDR (PQ)"), ("arib-std-b67", "HDR (HLG)"), ("log100", "logarithmic")])
def test_colour_of_hdr_or_log_video_into_exr_is_one_error_line(tmp_path, graded, run, capsys, trc, says):
    """PQ, HLG and log video are not linearised here (HDR would otherwise reach the EXR tone-mapped to SDR, as the
    PNG sequence gets it): one line before any work, naming what to write instead; its matte still goes to EXR."""
    video = tmp_path / "hdr.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-start_number", "1001", "-i", str(graded / "g.%04d.png"), "-c:v", "ffv1",
                    "-pix_fmt", "gbrp10le", "-color_trc", trc, "-color_primaries", "bt2020", str(video)],
                   check=True, timeout=60)  # fmt: skip
    assert run(video, "-o", tmp_path / "out" / "c.%04d.exr", "--output", "alpha") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("birefvid: error:") and says in err[0] and ".tif" in err[0], err
    assert not (tmp_path / "out").exists()
    assert run(video, "-o", tmp_path / "a.mov", "--also", f"foreground={tmp_path / 'x' / 'x.%04d.exr'}") == 2
    assert says in capsys.readouterr().err and not (tmp_path / "a.mov").exists() and not (tmp_path / "x").exists()
    assert run(video, "-o", tmp_path / "m" / "m.%04d.exr", "--output", "mask") == 0
    assert names(tmp_path / "m") == ["m.0001.exr", "m.0002.exr", "m.0003.exr"]


def exr_pixel_aspect(path: Path) -> float:
    """The header's ``pixelAspectRatio``, one of the attributes OpenEXR requires of every file."""
    header = exr_header(path)
    assert "pixelAspectRatio" in header, "a required attribute: OpenEXR's strict reading refuses the file without it"
    return struct.unpack("<f", header["pixelAspectRatio"])[0]


@pytest.mark.parametrize("sar", ["4/3", "2/1"])
def test_an_exr_of_an_anamorphic_source_records_its_pixel_shape(tmp_path, graded, seg, caplog, sar):
    """DV/HDV/anamorphic-lens plates have pixels wider than tall. EXR's ``pixelAspectRatio`` says so, and Nuke, Fusion
    and FFmpeg show the frame unsqueezed by it; FFmpeg's encoder left it out (it writes it only when told a pixel
    shape), so the compositor saw 4:3 pixels as square, the picture squeezed, and OpenEXR's strict reading refused the
    file. Matte and colour both carry it, so a Merge of the two lines up; no warning that viewers will squeeze them."""
    video = tmp_path / "plate.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-start_number", "1001", "-i", str(graded / "g.%04d.png"), "-vf", f"setsar={sar}",
                    "-c:v", "ffv1", "-pix_fmt", "bgr0", str(video)], check=True, timeout=60)  # fmt: skip
    with caplog.at_level("WARNING", logger="birefvid"):
        process_video(video, tmp_path / "rgba" / "rgba.%04d.exr", kind="alpha", segmenter=seg, smooth="none",
                      also=[("mask", str(tmp_path / "m" / "m.%04d.exr"))])  # fmt: skip
    assert "squeezed" not in caplog.text
    for path in (tmp_path / "rgba" / "rgba.0001.exr", tmp_path / "m" / "m.0003.exr"):
        assert exr_pixel_aspect(path) == pytest.approx(float(Fraction(sar)), rel=1e-6)
        shown = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=sample_aspect_ratio", "-of", "csv=p=0",
                                str(path)], capture_output=True, text=True, check=True, timeout=60).stdout.strip()  # fmt: skip
        assert shown == sar.replace("/", ":"), "FFmpeg reads the pixel shape back"


def test_an_exr_of_square_pixels_says_1(tmp_path, graded, seg):
    """Square pixels: ``pixelAspectRatio`` 1, written, not left for a reader to assume."""
    process_video(graded, tmp_path / "m" / "m.%04d.exr", kind="mask", segmenter=seg, smooth="none",
                  also=[("foreground", str(tmp_path / "f" / "f.%04d.exr"))])  # fmt: skip
    assert exr_pixel_aspect(tmp_path / "m" / "m.1001.exr") == 1.0
    assert exr_pixel_aspect(tmp_path / "f" / "f.1001.exr") == 1.0


def test_image_to_exr_is_one_line_naming_the_process_command_that_writes_it(tmp_path, graded, run, pvt_b0_weights, capsys):
    """`birefvid image` writes display pictures (an ICC profile, EXIF, JPEG/WebP quality), not linear light: `-o
    cut.exr` is refused, but with the command that does write it, `process` of the one picture into a one-frame EXR
    sequence, which then works as the line says (it said only "expected .png, .webp, ...", leaving EXR to guesswork)."""
    picture = graded / "g.1001.png"
    model = ["--weights", str(pvt_b0_weights), "--resolution", "64", "--device", "cpu", "-q"]
    assert main(["image", str(picture), "-o", str(tmp_path / "cut.exr"), *model]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    suggested = tmp_path / "cut" / "cut.%04d.exr"
    assert len(err) == 1 and err[0].startswith("birefvid: error:") and f"birefvid process {picture} -o {suggested}" in err[0], err
    assert not (tmp_path / "cut.exr").exists()
    assert run(picture, "-o", suggested, "--output", "alpha") == 0
    assert names(tmp_path / "cut") == ["cut.0001.exr"] and exr_channels(tmp_path / "cut" / "cut.0001.exr")[0] == ("A", 1)


def exr_timecode(path: Path) -> tuple[str, bool]:
    """The header's SMPTE ``timeCode`` as HH:MM:SS:FF and its drop-frame flag, decoded here from OpenEXR's TV60
    packing (ImfTimeCode.h): binary-coded decimal, frame in bits 0-5, drop-frame bit 6, seconds 8-14, minutes 16-22,
    hours 24-29; the second unsigned int is the user data."""
    value = exr_header(path)["timeCode"]
    assert len(value) == 8, "type timecode: two unsigned ints, timeAndFlags and userData"
    bits, _user = struct.unpack("<II", value)

    def bcd(shift: int, tens_bits: int) -> int:
        return (bits >> (shift + 4) & (1 << tens_bits) - 1) * 10 + (bits >> shift & 0xF)

    return f"{bcd(24, 2):02d}:{bcd(16, 3):02d}:{bcd(8, 3):02d}:{bcd(0, 2):02d}", bool(bits >> 6 & 1)


def exr_rate(path: Path) -> Fraction:
    """The header's ``framesPerSecond``: type rational, an int numerator and an unsigned int denominator."""
    numerator, denominator = struct.unpack("<iI", exr_header(path)["framesPerSecond"])
    return Fraction(numerator, denominator)


def timed_clip(path: Path, rate: str, timecode: str | None, frames: int = 3) -> Path:
    """A small FFV1 clip at ``rate`` with a start ``timecode`` (a tmcd track, as a camera's or an editor's), or none."""
    tagged = ["-timecode", timecode] if timecode else []
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=s={SIZE[0]}x{SIZE[1]}:r={rate}", "-frames:v",
                    str(frames), *tagged, "-c:v", "ffv1", str(path)], check=True, timeout=60)  # fmt: skip
    return path


@pytest.mark.parametrize("rate,start,expected", [
    ("25", "01:00:00:00", ["01:00:00:00", "01:00:00:01", "01:00:00:02"]),
    ("30000/1001", "00:59:59;28", ["00:59:59:28", "00:59:59:29", "01:00:00:00"]),
    ("30000/1001", "00:00:59;28", ["00:00:59:28", "00:00:59:29", "00:01:00:02"]),  # a minute not a tenth: ;00 and ;01 dropped
], ids=["25", "29.97-drop", "29.97-drop-minute"])  # fmt: skip
def test_exr_frames_carry_their_timecode_and_rate(tmp_path, seg, rate, start, expected):
    """Each EXR frame, matte and cut-out alike, carries its own SMPTE ``timeCode`` (the start's, counted on by the
    frame, drop-frame as SMPTE 12M counts it) and the source's exact ``framesPerSecond``, which Nuke, Resolve/Fusion,
    OpenImageIO and exrheader read to conform it; FFmpeg's encoder wrote neither. FFmpeg still decodes the files."""
    clip = timed_clip(tmp_path / "clip.mov", rate, start)
    process_video(clip, tmp_path / "rgba" / "rgba.%04d.exr", kind="alpha", segmenter=seg, smooth="none",
                  also=[("mask", str(tmp_path / "m" / "m.%04d.exr"))])  # fmt: skip
    drop = ";" in start
    for folder in ("rgba", "m"):
        files = sorted((tmp_path / folder).iterdir())
        assert [exr_timecode(path) for path in files] == [(tc, drop) for tc in expected]
        assert {exr_rate(path) for path in files} == {Fraction(rate)}
        assert decoded(files[-1], "grayf32le", 1, "<f4").shape == (SIZE[1], SIZE[0], 1)


def test_openexrs_own_reader_reads_the_timing_and_the_pixel_shape(tmp_path, seg):
    """OpenEXR's own ``exrheader`` (strict where FFmpeg is lenient) reads the headers birefvid patches: the frame's
    drop-frame timeCode, the exact framesPerSecond, the chromaticities and the pixel shape."""
    exrheader = need_binary("exrheader", "openexr")
    clip = timed_clip(tmp_path / "clip.mov", "30000/1001", "00:59:59;28")
    process_video(clip, tmp_path / "rgba" / "rgba.%04d.exr", kind="alpha", segmenter=seg, smooth="none")
    last = sorted((tmp_path / "rgba").iterdir())[-1]
    shown = subprocess.run([exrheader, str(last)], capture_output=True, text=True, check=True, timeout=60).stdout
    assert "time 01:00:00:00" in shown and "drop frame 1" in shown, shown
    assert "rational): 30000/1001" in shown and "chromaticities" in shown and "pixelAspectRatio" in shown, shown


def test_exr_frames_of_a_source_without_timecode_carry_its_rate_alone(tmp_path, seg):
    """No start timecode: ``framesPerSecond`` (23.976 as 24000/1001, exact), and no made-up ``timeCode``."""
    clip = timed_clip(tmp_path / "clip.mkv", "24000/1001", None)
    process_video(clip, tmp_path / "m" / "m.%04d.exr", kind="mask", segmenter=seg, smooth="none")
    path = tmp_path / "m" / "m.0001.exr"
    assert exr_rate(path) == Fraction(24000, 1001)
    assert "timeCode" not in exr_header(path)


def test_exr_frames_of_a_plate_with_a_gap_keep_their_numbers_timecodes(tmp_path, plate, seg):
    """A numbered plate's frames are its timecode (plate.1001.png at 25 fps: 00:00:40:01); a frame missing from it
    (1003, a failed render) leaves a gap in the EXRs' timecodes too, as in their numbers."""
    (plate / "plate.1003.png").rename(plate / "plate.1004.png")
    process_video(plate, tmp_path / "m" / "m.%04d.exr", kind="mask", segmenter=seg, smooth="none", fps=25)
    files = sorted((tmp_path / "m").iterdir())
    assert [p.name for p in files] == ["m.1001.exr", "m.1002.exr", "m.1004.exr"]
    assert [exr_timecode(p) for p in files] == [("00:00:40:01", False), ("00:00:40:02", False), ("00:00:40:04", False)]
    assert exr_rate(files[0]) == 25


def test_exr_frames_above_30_fps_count_frame_pairs_and_above_60_carry_no_timecode(tmp_path, seg):
    """SMPTE 12M's frame field holds 0-29: a 50 fps clip's frames go by pairs, the second flagged by the field/phase
    bit (15 in OpenEXR's TV60 packing), as SMPTE ST 12-1 and FFmpeg count them; 120 fps has no timecode frame to give,
    so its frames carry ``framesPerSecond`` alone rather than a wrong ``timeCode``."""
    fifty = timed_clip(tmp_path / "fifty.mov", "50", "10:00:00:48", frames=4)
    process_video(fifty, tmp_path / "m" / "m.%04d.exr", kind="mask", segmenter=seg, smooth="none")
    files = sorted((tmp_path / "m").iterdir())
    assert [exr_timecode(p)[0] for p in files] == ["10:00:00:24", "10:00:00:24", "10:00:01:00", "10:00:01:00"]
    assert [struct.unpack("<II", exr_header(p)["timeCode"])[0] >> 15 & 1 for p in files] == [0, 1, 0, 1]
    fast = timed_clip(tmp_path / "fast.mov", "120", "00:00:01:00", frames=2)
    process_video(fast, tmp_path / "f" / "f.%04d.exr", kind="mask", segmenter=seg, smooth="none")
    path = sorted((tmp_path / "f").iterdir())[0]
    assert "timeCode" not in exr_header(path) and exr_rate(path) == 120
