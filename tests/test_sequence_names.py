"""Image sequences as a compositor hands them over and wants them back: a PNG-sequence output named by a pattern,
`-o out/matte.%04d.png` (ffmpeg) or `-o out/matte.####.png` (Nuke), in the plate's numbers (`plate.1001.png` ->
`matte.1001.png`, gaps kept), and EXR/DPX plates refused in one line that says how to convert them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import av
import cv2
import numpy as np
import pytest

from birefvid.api import process_video
from birefvid.cli import main
from process_fixtures import interior, make_scene, red_key_segmenter, true_mask, write_scene_images

SIZE = (64, 48)


@pytest.fixture(scope="module")
def seg():
    return red_key_segmenter()


@pytest.fixture
def plate(tmp_path) -> Path:
    """Five frames `plate.1001.png` ... `plate.1005.png`, as a render or a scan delivers them."""
    for i, path in enumerate(write_scene_images(tmp_path / "plate", 5, SIZE)):
        path.rename(path.parent / f"plate.{1001 + i}.png")
    return tmp_path / "plate"


@pytest.fixture
def run(pvt_b0_weights, red_key):
    """``process`` as typed, with the red-key test module in place of the model it loads (conftest's ``red_key``): these
    tests are about files and their names, and the seeded pvt_v2_b0's load and frames were most of a run's CPU."""

    def _run(*args: str) -> int:
        return main(["process", *map(str, args), "--weights", str(pvt_b0_weights), "--resolution", "64", "--device", "cpu", "-q"])

    return _run


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("pattern,names", [("matte.%04d.png", [f"matte.{n}.png" for n in range(1001, 1006)]),
                                           ("matte.####.png", [f"matte.{n}.png" for n in range(1001, 1006)]),
                                           ("m_%d.png", [f"m_{n}.png" for n in range(1001, 1006)]),
                                           ("m.######.png", [f"m.{n:06d}.png" for n in range(1001, 1006)])])  # fmt: skip
def test_a_pattern_names_the_files_in_the_plates_numbers(tmp_path, plate, seg, pattern, names):
    """`-o out/matte.%04d.png` was refused (`cannot write mask output to .png files`); now each matte is named by
    the pattern, numbered as its plate frame, and the pixels are the matte's."""
    process_video(plate, tmp_path / "out" / pattern, kind="mask", segmenter=seg, smooth="none")
    assert _names(tmp_path / "out") == names
    for i, name in enumerate(names):
        matte = cv2.imread(str(tmp_path / "out" / name), cv2.IMREAD_UNCHANGED)
        fg, bg = interior(true_mask(i, SIZE))
        assert matte.shape == SIZE[::-1] and np.abs(matte[fg].astype(int) - 255).max() <= 4 and matte[bg].max() <= 4


def test_a_pattern_for_also_and_a_video_input(tmp_path, plate, seg):
    """`--also mask=...pattern` too; a video without a timecode numbers from 1, as ffmpeg's image2 muxer does."""
    process_video(plate, tmp_path / "a.mov", kind="alpha", segmenter=seg, smooth="none", also=[("mask", str(tmp_path / "m" / "m.####.png"))])
    assert _names(tmp_path / "m") == [f"m.{n}.png" for n in range(1001, 1006)]
    process_video(tmp_path / "a.mov", tmp_path / "v" / "x.%04d.png", kind="mask", segmenter=seg, smooth="none")
    assert _names(tmp_path / "v") == [f"x.{n}.png" for n in range(1001, 1006)]  # a.mov's timecode 00:00:40:01 is frame 1001
    clip = make_scene(tmp_path / "clip.mov", 3, SIZE)  # no timecode
    process_video(clip.path, tmp_path / "c" / "x.%04d.png", kind="mask", segmenter=seg, smooth="none")
    assert _names(tmp_path / "c") == ["x.0001.png", "x.0002.png", "x.0003.png"]


def test_bad_patterns_are_one_error_line(tmp_path, plate, run, capsys):
    """A DPX or JPEG pattern (formats not written), two number fields: one line each, nothing written."""
    for pattern, phrase in (("m.####.dpx", "written as PNG, TIFF or OpenEXR"), ("m.%04d.jpg", "end the pattern in .png, .tif or .exr"),
                            ("m.%04d.####.png", "one frame-number field")):  # fmt: skip
        assert run(plate, "-o", tmp_path / "out" / pattern) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("birefvid: error:") and phrase in err[0], err
    assert not (tmp_path / "out").exists() and _names(tmp_path) == ["plate"]
    assert run(plate, "-o", tmp_path / "take#2.mov") == 0  # a # that is no number field before a picture's extension: a video
    assert _names(tmp_path) == ["plate", "take#2.mov"]


def test_overwrite_replaces_only_the_patterns_own_folder(tmp_path, plate, run, capsys):
    """The pattern's folder is the sequence's, as `-o out/` is: an existing one needs --overwrite, and --overwrite
    replaces a previous run's files but never deletes other files beside them (a compositor's `comp/` folder)."""
    out = tmp_path / "comp"
    assert run(plate, "-o", out / "matte.####.png") == 0
    assert run(plate, "-o", out / "matte.####.png") == 2
    assert "output exists" in capsys.readouterr().err
    assert run(plate, "-o", out / "matte.####.png", "--overwrite") == 0
    assert _names(out) == [f"matte.{n}.png" for n in range(1001, 1006)]
    (out / "notes.txt").write_text("keep me")
    assert run(plate, "-o", out / "matte.####.png", "--overwrite") == 2
    assert "notes.txt" in capsys.readouterr().err and (out / "notes.txt").read_text() == "keep me"
    assert run(plate, "-o", plate / "matte.####.png", "--overwrite") == 2  # into the plate's own folder
    assert "which this run reads" in capsys.readouterr().err and len(_names(plate)) == 5


def test_overwrite_passes_over_what_a_file_browser_left(tmp_path, plate, run):
    """A previous run's folder opened in the Finder (`.DS_Store`, `._matte.1001.png` on an exFAT drive) or Explorer
    (`Thumbs.db`) was refused by --overwrite as holding other files; those are no one's render: it is replaced."""
    out = tmp_path / "comp"
    assert run(plate, "-o", out / "matte.####.png", "--output", "mask") == 0
    for name in (".DS_Store", "Thumbs.db", "._matte.1001.png"):
        (out / name).write_bytes(b"\x00" * 16)
    assert run(plate, "-o", out / "matte.####.png", "--output", "mask", "--overwrite") == 0
    assert _names(out) == [f"matte.{n}.png" for n in range(1001, 1006)]


def test_other_files_in_the_patterns_folder_are_said_before_overwrite(tmp_path, plate, run, capsys):
    """A pattern's folder holding another render said 'output exists: comp (use --overwrite)', and --overwrite was then
    refused for that render: the first line now names it, and nothing is written."""
    out = tmp_path / "comp"
    out.mkdir()
    (out / "other_render.0001.png").write_bytes(b"keep")
    assert run(plate, "-o", out / "matte.%04d.png", "--output", "mask") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds files other than matte.%04d.png (other_render.0001.png)" in err[0], err
    assert "use --overwrite" not in err[0] and _names(out) == ["other_render.0001.png"]


def test_a_windows_separator_in_a_pattern_is_named_on_linux(tmp_path, plate, run, capsys, monkeypatch):
    """`-o out\\matte.%04d.png` (a Windows habit, in WSL) is a name in the current folder here: the line names the
    pattern with `/`, which works."""
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert run(plate, "-o", "out\\matte.%04d.png", "--output", "mask") == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("name one, as out/matte.%04d.png"), err
    assert run(plate, "-o", "out/matte.%04d.png", "--output", "mask") == 0 and len(_names(tmp_path / "work" / "out")) == 5


@pytest.mark.parametrize("given", ["matte.####.png", "./matte.%04d.png", "./"])
def test_a_sequence_in_the_current_folder_is_one_error_line(tmp_path, plate, run, capsys, monkeypatch, given):
    """`-o matte.####.png` from inside an empty `comp/` ran to the end and then failed in a traceback (exit 1, 'PosixPath('.')
    has an empty name'), its frames lost: the folder a sequence fills is renamed into place, which the current
    folder cannot be. It is now one line before any work, naming a folder to use."""
    (tmp_path / "comp").mkdir()
    monkeypatch.chdir(tmp_path / "comp")
    assert run(plate, "-o", given, "--output", "mask") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"birefvid: error: {given}: an image sequence is written into a folder of its own"), err
    assert "name one, as out/" in err[0] and _names(tmp_path / "comp") == []


@pytest.mark.parametrize("given", ["matte.####.png", "./"])
def test_a_sequence_in_the_folder_that_holds_the_input_says_why_it_is_refused(tmp_path, plate, run, capsys, monkeypatch, given):
    """Run where the plate is, as most are, `-o matte.####.png` said 'writing matte.####.png would replace plate, which
    this run reads': untrue (the plate was never at risk), and no hint of what to write. The line is now the current
    folder's, naming a folder to use, as it is from anywhere else."""
    monkeypatch.chdir(tmp_path)
    assert run("plate", "-o", given, "--output", "mask") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"birefvid: error: {given}: an image sequence is written into a folder of its own"), err
    assert "name one, as out/" in err[0] and "would replace" not in err[0]
    assert _names(tmp_path) == ["plate"] and len(_names(plate)) == 5


def test_two_patterns_in_one_folder_are_told_as_such(tmp_path, plate, run, capsys):
    """`-o comp/rgba.%04d.png --also mask=comp/m.####.png` said the two were 'the same file (or one is inside the
    other)'; the line now says they share a folder, which each sequence owns, and names a folder for each."""
    assert run(plate, "-o", tmp_path / "comp" / "rgba.%04d.png", "--also", f"mask={tmp_path / 'comp' / 'm.####.png'}") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "are two image sequences in one folder" in err[0] and "same file" not in err[0], err
    assert f"as {tmp_path / 'comp' / 'rgba' / 'rgba.%04d.png'} and {tmp_path / 'comp' / 'm' / 'm.####.png'}" in err[0], err
    (tmp_path / "comp").mkdir()  # as for -o comp/rgba/: the folder it goes in exists
    assert run(plate, "-o", tmp_path / "comp" / "rgba" / "rgba.%04d.png", "--also", f"mask={tmp_path / 'comp' / 'm' / 'm.####.png'}") == 0
    assert _names(tmp_path / "comp" / "m") == [f"m.{n}.png" for n in range(1001, 1006)]


def test_a_single_picture_to_a_pattern_is_a_one_frame_sequence(tmp_path, plate, run, capsys):
    """`process still.png -o out/m.%04d.png` was refused as `image`'s job, and the `birefvid image` line it gave wrote
    one file named `m.%04d.png`; it is a one-frame sequence now, as `-o out/` makes one."""
    still = plate / "plate.1001.png"
    assert run(still, "-o", tmp_path / "out" / "m.%04d.png", "--output", "mask") == 0, capsys.readouterr().err
    assert _names(tmp_path / "out") == ["m.0001.png"]
    assert cv2.imread(str(tmp_path / "out" / "m.0001.png"), cv2.IMREAD_UNCHANGED).shape == SIZE[::-1]


def test_a_120_fps_plate_keeps_its_numbers(tmp_path, seg):
    """A 120 fps plate from plate.1199.png: its timecode 00:00:09:119 (three frame digits above 99 fps, as FFmpeg writes
    them) was not read back, and its mattes, and those of the MOV made from it, came out as m.0001.png..."""
    for i, path in enumerate(write_scene_images(tmp_path / "plate", 3, SIZE)):
        path.rename(path.parent / f"plate.{1199 + i}.png")
    process_video(tmp_path / "plate", tmp_path / "m" / "m.%04d.png", kind="mask", segmenter=seg, smooth="none", fps=120)
    assert _names(tmp_path / "m") == ["m.1199.png", "m.1200.png", "m.1201.png"]
    process_video(tmp_path / "plate", tmp_path / "a.mov", kind="alpha", segmenter=seg, smooth="none", fps=120)
    process_video(tmp_path / "a.mov", tmp_path / "v" / "v.%04d.png", kind="mask", segmenter=seg, smooth="none")
    assert _names(tmp_path / "v") == ["v.1199.png", "v.1200.png", "v.1201.png"]


def test_a_pattern_as_input_names_the_folder_and_glob_that_read_it(tmp_path, plate, run, capsys):
    """`process plate/plate.####.png`, as -o takes it, said only 'input not found'; the line now names the folder and
    the glob that read the plate, and the glob reads it."""
    for given in ("plate.####.png", "plate.%04d.png"):
        assert run(plate / given, "-o", tmp_path / "a.mov") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0] == (f"birefvid: error: input not found: {plate / given} (a sequence pattern names outputs; "
                                            f"an image sequence is read from its folder or a glob: {plate} or '{plate}/plate.*.png')"), err
    assert run(f"{plate}/plate.*.png", "-o", tmp_path / "m" / "m.%04d.png", "--output", "mask") == 0
    assert _names(tmp_path / "m") == [f"m.{n}.png" for n in range(1001, 1006)]


def _gapped_plate(folder: Path, numbers: tuple[int, ...] = (1001, 1002, 1004, 1005, 1006)) -> Path:
    """The red-square scene as `plate.1001.png`..., with the numbers a failed render left (1003 missing by default)."""
    for number, path in zip(numbers, write_scene_images(folder, len(numbers), SIZE)):
        path.rename(path.parent / f"plate.{number}.png")
    return folder


def _video_frames(path: Path) -> tuple[list[float], list[np.ndarray], SimpleNamespace]:
    """A video's frame times (seconds) and RGB pictures, as an editor's decoder reads them, and its stream's rate and
    tags (read while it is open: PyAV 18.1.1 raises on a stream of a closed container)."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = list(c.decode(stream))
        facts = SimpleNamespace(average_rate=stream.average_rate, metadata=dict(stream.metadata))
        return [f.time for f in frames], [f.to_ndarray(format="rgb24") for f in frames], facts


def test_a_plate_with_missing_frames_keeps_its_numbers(tmp_path, seg, caplog):
    """A plate a failed render left without 1003 came back as frame_000001..5: plate.1004's matte was numbered 3
    and the MOV had no timecode. The PNGs now keep the plate's numbers (1003 missing there too), and a video holds
    1002 over 1003 from the plate's timecode (constant rate: see the next test)."""
    plate = _gapped_plate(tmp_path / "plate")
    with caplog.at_level("WARNING", logger="birefvid"):
        process_video(plate, tmp_path / "m" / "m.%04d.png", kind="mask", segmenter=seg, smooth="none")
    assert _names(tmp_path / "m") == ["m.1001.png", "m.1002.png", "m.1004.png", "m.1005.png", "m.1006.png"]
    said = [r.getMessage() for r in caplog.records if "missing" in r.getMessage()]
    assert len(said) == 1 and said[0].endswith(
        "plate: frame 1003 of the numbered sequence is missing; the outputs keep the plate's numbers: a PNG sequence leaves "
        "it out too, a video writes the frame before a gap again in its place (constant rate, as editors expect), and a "
        "GIF, WebP or APNG shows that frame longer"), said  # fmt: skip
    for i, name in enumerate(_names(tmp_path / "m")):  # plate.1004.png's matte is m.1004.png
        fg, bg = interior(true_mask(i, SIZE))
        matte = cv2.imread(str(tmp_path / "m" / name), cv2.IMREAD_UNCHANGED)
        assert np.abs(matte[fg].astype(int) - 255).max() <= 4 and matte[bg].max() <= 4


@pytest.mark.parametrize("name", ["a.mov", "a.mp4", "a.mkv"])
def test_a_video_of_a_gapped_plate_is_constant_rate(tmp_path, seg, name):
    """A MOV of plate.1001, 1002, 1004-1006 was variable-rate (r_frame_rate 24, avg_frame_rate 20, frames at 0, .042,
    .125 ...), which Resolve, Premiere and Avid handle badly. It now holds 6 frames 1/24 s apart, as `ffmpeg -vsync cfr`
    writes it: the third a copy of the second (1002 written again for 1003), from the plate's timecode."""
    plate = _gapped_plate(tmp_path / "plate")
    kind = "green" if name.endswith(".mp4") else "alpha"
    report = process_video(plate, tmp_path / name, kind=kind, segmenter=seg, smooth="none", fps=24)
    times, pictures, stream = _video_frames(tmp_path / name)
    assert times == pytest.approx([i / 24 for i in range(6)], abs=1e-3)
    assert stream.average_rate == 24 and stream.metadata.get("timecode", stream.metadata.get("TIMECODE")) == "00:00:41:17"
    assert np.array_equal(pictures[2], pictures[1]) and not np.array_equal(pictures[3], pictures[1])
    assert report["frames"] == 5 and report["resolved"]["outputs"][0]["frames"] == 6  # 5 read and cut out; 6 in the video


def test_also_a_png_sequence_and_a_mov_of_a_gapped_plate(tmp_path, seg):
    """One run, two outputs: the PNGs leave 1003 out (a compositor conforms by number), the MOV holds 1002 over it;
    the report counts each output's own frames."""
    plate = _gapped_plate(tmp_path / "plate")
    report = process_video(plate, tmp_path / "m" / "m.%04d.png", kind="mask", segmenter=seg, smooth="none", fps=24,
                           also=[("alpha", str(tmp_path / "a.mov"))])  # fmt: skip
    assert _names(tmp_path / "m") == ["m.1001.png", "m.1002.png", "m.1004.png", "m.1005.png", "m.1006.png"]
    times, pictures, _ = _video_frames(tmp_path / "a.mov")
    assert len(times) == 6 and np.array_equal(pictures[2], pictures[1])
    assert [o["frames"] for o in report["resolved"]["outputs"]] == [5, 6]


@pytest.mark.parametrize("start,end,count,timecode", [(0.041666, 0.124999, 2, "00:00:41:18"),  # 1002-1003: 1002 twice
                                                      (0, 0.1, 3, "00:00:41:17"),  # --end inside the gap: 1001, 1002, 1002
                                                      (0.083333, None, 3, "00:00:41:20")])  # --start inside it: from 1004  # fmt: skip
def test_a_range_across_the_gap_is_constant_rate(tmp_path, seg, start, end, count, timecode):
    """--start/--end across the gap: the video holds every number of the range (1003 as 1002), from the first kept
    frame's timecode; a range starting inside the gap starts at 1004, as `ffmpeg -ss` does, with no frame held over."""
    plate = _gapped_plate(tmp_path / "plate")
    process_video(plate, tmp_path / "a.mov", kind="alpha", segmenter=seg, smooth="none", fps=24, start=start, end=end)
    times, _, stream = _video_frames(tmp_path / "a.mov")
    assert times == pytest.approx([i / 24 for i in range(count)], abs=1e-3)
    assert stream.metadata.get("timecode") == timecode


@pytest.mark.parametrize("name", ["a.gif", "a.apng"])
def test_an_animation_of_a_gapped_plate_shows_the_frame_before_longer(tmp_path, seg, name):
    """GIF, WebP and APNG give each frame its own delay, which browsers play as written: 1002 is one frame shown for two
    frames' time (no editor conforms an animation, and a repeated frame would only add bytes)."""
    plate = _gapped_plate(tmp_path / "plate")
    process_video(plate, tmp_path / name, kind="alpha", segmenter=seg, smooth="none", fps=24)
    times, _, _ = _video_frames(tmp_path / name)
    assert times == pytest.approx([0, 1 / 24, 3 / 24, 4 / 24, 5 / 24], abs=0.006)  # GIF delays are centiseconds


def _write_plate(folder: Path, codec: str, pix_fmt: str, numbers: range, name: str = "plate.{n:04d}") -> None:
    """Real EXR or DPX frames, encoded by FFmpeg (PyAV's image2 muxer), as a scan or a Nuke render delivers them."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        with av.open(str(folder / f"{name.format(n=n)}.{codec}"), "w", format="image2") as c:
            stream = c.add_stream(codec, rate=24)
            stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], pix_fmt
            picture = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
            c.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format=pix_fmt)))
            c.mux(stream.encode())


@pytest.mark.parametrize("codec,pix_fmt,kind", [("exr", "gbrpf32le", "EXR"), ("dpx", "rgb48le", "DPX")])
def test_exr_and_dpx_plates_are_one_line_naming_the_conversion(tmp_path, run, capsys, codec, pix_fmt, kind):
    """A folder of EXR or DPX frames said only "no images found in plate (expected files ending in .bmp, ...)". It
    now names the format and the ffmpeg line that converts it to 16-bit PNGs, numbers kept; nothing is written."""
    _write_plate(tmp_path / "plate", codec, pix_fmt, range(1001, 1004))
    for given in (tmp_path / "plate", f"{tmp_path / 'plate'}/*.{codec}"):
        assert run(given, "-o", tmp_path / "out.mov") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("birefvid: error:"), err
        assert f"holds {kind} frames (plate.1001.{codec}, ...), which birefvid does not read" in err[0], err
        assert f"-start_number 1001 -i {tmp_path / 'plate'}/plate.%04d.{codec} -start_number 1001 -pix_fmt rgb48be" in err[0], err
    assert _names(tmp_path) == ["plate"]


def test_an_exr_plate_with_a_preview_beside_it_is_refused_not_read_as_the_preview(tmp_path, seg, run, capsys, caplog):
    """An EXR plate with a `preview.png` beside it came out as a one-frame video of the preview, its frames left out
    without a word: it is the EXR line now, naming the preview. A PNG plate with one EXR beside it is read, with a
    warning naming the EXR."""
    _write_plate(tmp_path / "plate", "exr", "gbrpf32le", range(1001, 1004))
    write_scene_images(tmp_path / "preview", 1, SIZE)[0].rename(tmp_path / "plate" / "preview.png")
    assert run(tmp_path / "plate", "-o", tmp_path / "out.mov") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds EXR frames (plate.1001.exr, ...), which birefvid does not read, and only preview.png beside them; convert" in err[0], err
    assert not (tmp_path / "out.mov").exists()
    pngs = write_scene_images(tmp_path / "pngs", 3, SIZE)
    (tmp_path / "plate" / "plate.1001.exr").rename(tmp_path / "pngs" / "plate.1001.exr")
    with caplog.at_level("WARNING", logger="birefvid"):
        report = process_video(tmp_path / "pngs", tmp_path / "m.mov", kind="mask", segmenter=seg, smooth="none")
    assert report["frames"] == len(pngs) == 3
    assert any("1 EXR file left out (plate.1001.exr): birefvid does not read it" in r.getMessage() for r in caplog.records)


def test_the_conversion_line_converts_an_unpadded_plate_whole(tmp_path, run, capsys):
    """A Houdini `$F` render, f_8.exr ... f_11.exr, unpadded: the line said `-start_number 10 -i f_%02d.exr` (its
    files sorted as text), and ffmpeg converted 10 and 11 only. Run as printed, it now converts all four."""
    import subprocess

    _write_plate(tmp_path / "plate", "exr", "gbrpf32le", range(8, 12), name="f_{n}")
    assert run(tmp_path / "plate", "-o", tmp_path / "out.mov") == 2
    line = capsys.readouterr().err.strip()
    assert "(f_8.exr, ...)" in line and "-start_number 8 -i" in line, line
    command = line.split("numbers kept: ", 1)[1]
    subprocess.run(["bash", "-c", f"{command} -loglevel error"], check=True, timeout=60)
    assert _names(tmp_path / "png16") == ["f_10.png", "f_11.png", "f_8.png", "f_9.png"]
    with av.open(str(tmp_path / "png16" / "f_8.png")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "rgb48be"


def test_a_range_in_frame_numbers_is_told_in_seconds(tmp_path, plate, run, capsys):
    """`--start 1002 --end 1005` on plate.1001.png... said only "no frames from 1002 s to 1005 s; the video lasts
    0.208 s". The line now gives the seconds those frames are, and they give exactly those frames."""
    assert run(plate, "-o", tmp_path / "m" / "m.%04d.png", "--output", "mask", "--fps", "24", "--start", "1002", "--end", "1005") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "frames 1002 to 1004 of this sequence (numbered from 1001 at 24 fps) are --start 0.041666 --end 0.166666" in err[0], err
    assert run(plate, "-o", tmp_path / "m" / "m.%04d.png", "--output", "mask", "--fps", "24", "--start", "0.041666", "--end", "0.166666") == 0
    assert _names(tmp_path / "m") == ["m.1002.png", "m.1003.png", "m.1004.png"]
    assert run(plate, "-o", tmp_path / "n.mov", "--fps", "24", "--start", "1003") == 2
    assert "frames from 1003 on of this sequence (numbered from 1001 at 24 fps) are --start 0.083333" in capsys.readouterr().err


def test_macos_appledouble_files_beside_the_frames_are_left_out(tmp_path, plate, seg):
    """A plate copied from a Mac to an exFAT or network drive has `._plate.1001.png` (AppleDouble: the Finder's
    metadata, no picture) beside each frame; the run stopped at the first: `._plate.1001.png is not a readable image`."""
    for frame in sorted(plate.iterdir()):
        (plate / f"._{frame.name}").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(4066))
    (plate / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(100))
    (plate / "Thumbs.db").write_bytes(bytes(512))
    report = process_video(plate, tmp_path / "m" / "m.%04d.png", kind="mask", segmenter=seg, smooth="none")
    assert report["frames"] == 5 and _names(tmp_path / "m") == [f"m.{n}.png" for n in range(1001, 1006)]


def test_a_preview_picture_beside_the_plate_is_left_out(tmp_path, plate, seg, caplog):
    """A `preview.png` beside `plate.1001.png`... became the plate's last frame, and the plate lost its numbers (the
    mattes came back as `m.0001.png`...): it is now left out with a warning naming it, as Nuke's plate.####.png reads."""
    (plate / "preview.png").write_bytes((plate / "plate.1001.png").read_bytes())
    with caplog.at_level("WARNING", logger="birefvid"):
        report = process_video(plate, tmp_path / "m" / "m.%04d.png", kind="mask", segmenter=seg, smooth="none")
    assert report["frames"] == 5 and _names(tmp_path / "m") == [f"m.{n}.png" for n in range(1001, 1006)]
    assert any("preview.png left out: not part of the numbered sequence plate.1001.png to plate.1005.png" in r.getMessage()
               for r in caplog.records)  # fmt: skip
