"""`birefvid batch` over folder trees: --recursive mirrors subfolders, each real file once (links), clashes named by input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_batch_media import API_MODEL, MODEL, events, keyframed_clip, manifest, video_facts

from birefvid.cli import main

FRAMES = 2  # a short clip: the tests are about which files run and where outputs go, not pictures


def batch(*argv: str) -> int:
    return main(["batch", *argv, *MODEL, "--output", "mask"])


def outputs(folder: Path) -> list[str]:
    """Every file under ``folder`` but the batch's own work folder, as paths relative to it."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and ".birefvid-batch" not in p.parts)


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """clips/top.mp4, clips/s1/a.mp4, clips/s1/deep/long.mp4 (two chunks), clips/s2/a.mp4 (a like-named
    video in another subfolder), and clips/.hidden/h.mp4 (a hidden folder: never an input)."""
    root = tmp_path / "clips"
    for sub in ("s1/deep", "s2", ".hidden"):
        (root / sub).mkdir(parents=True)
    keyframed_clip(root / "top.mp4", FRAMES)
    keyframed_clip(root / "s1" / "a.mp4", FRAMES)
    keyframed_clip(root / "s1" / "deep" / "long.mp4", 2 * FRAMES, gop=FRAMES)
    (root / "s2" / "a.mp4").write_bytes((root / "s1" / "a.mp4").read_bytes())
    (root / ".hidden" / "h.mp4").write_bytes((root / "top.mp4").read_bytes())
    return root


MIRRORED = ["s1/a.mkv", "s1/deep/long.mkv", "s2/a.mkv", "top.mkv"]


def test_recursive_mirrors_the_tree_and_a_rerun_skips_every_video(tree, tmp_path):
    out, log = tmp_path / "out", tmp_path / "p.jsonl"
    assert batch(str(tree), "--recursive", "--output-dir", str(out), "--chunk-frames", str(FRAMES), "-q") == 0
    assert outputs(out) == MIRRORED
    assert len(video_facts(out / "s1" / "deep" / "long.mkv")["pts"]) == 2 * FRAMES  # its two chunks joined
    assert manifest(out)["videos"]["s1/deep/long.mkv"]["chunks"] == 2
    assert os.listdir(out / ".birefvid-batch") == ["manifest.json"]  # chunk folders gone, subfolders and all
    assert batch(str(tree), "-r", "--output-dir", str(out), "--chunk-frames", str(FRAMES), "--progress-json", str(log)) == 0
    ev = events(log)
    assert sorted(e["video"] for e in ev if e["event"] == "video_skipped") == MIRRORED
    assert ev[-1]["frames_computed"] == 0


def test_python_api_takes_recursive(tree, tmp_path):
    from birefvid.batch.runner import batch_videos

    totals = batch_videos([tree], tmp_path / "out", recursive=True, kind="mask", **API_MODEL)
    assert outputs(tmp_path / "out") == MIRRORED and totals["videos_done"] == len(MIRRORED)


def test_without_recursive_subfolders_are_named_and_left_out(tree, tmp_path, caplog):
    out = tmp_path / "out"
    assert batch(str(tree), "--output-dir", str(out), "-q") == 0
    assert outputs(out) == ["top.mkv"]
    assert "2 subfolders are not searched (s1, s2)" in caplog.text and "--recursive" in caplog.text


def test_recursive_outputs_beside_the_inputs_are_not_inputs_on_a_rerun(tree, tmp_path):
    """Written into the input tree itself, a.mkv beside a.mp4 would be an input writing a.mkv on the rerun."""
    before = outputs(tree)
    for _ in range(2):
        assert batch(str(tree), "-r", "--output-dir", str(tree), "-q") == 0
    assert outputs(tree) == sorted(before + MIRRORED)
    assert sorted(manifest(tree)["videos"]) == MIRRORED


def test_an_output_folder_inside_the_tree_is_not_searched(tree, tmp_path, caplog):
    """Not even once its manifest is gone (the advice for an unreadable one: remove it to start afresh);
    videos in it that the batch did not write are named, not left out without a word."""
    import shutil

    masks = tree / "masks"
    assert batch(str(tree), "-r", "--output-dir", str(masks), "-q") == 0
    assert "output folder" not in caplog.text  # its own outputs: nothing to say
    shutil.rmtree(masks / ".birefvid-batch")
    assert batch(str(tree), "-r", "--output-dir", str(masks), "--overwrite", "-q") == 0
    assert outputs(masks) == MIRRORED  # no masks/masks/...: its own outputs were not taken for inputs
    assert f"{masks} is the output folder, not searched: 4 videos in it are not processed" in caplog.text


def test_an_earlier_batchs_output_folder_inside_the_tree_is_not_searched(tree, tmp_path, caplog):
    """A second batch into another --output-dir (other options, to compare) must not take the first
    batch's masks, inside the tree, for new inputs: out2/masks/... would be masks of masks."""
    masks = tree / "masks"
    assert batch(str(tree), "-r", "--output-dir", str(masks), "-q") == 0
    out2 = tmp_path / "out2"
    assert batch(str(tree), "-r", "--output-dir", str(out2), "--threshold", "0.5", "-q") == 0
    assert outputs(out2) == MIRRORED
    assert f"{masks} holds the outputs of an earlier batch (its .birefvid-batch): 4 videos in it are not searched" in caplog.text


def test_a_link_and_its_target_are_processed_once(tmp_path, caplog):
    folder = tmp_path / "in"
    folder.mkdir()
    keyframed_clip(folder / "b.mp4", FRAMES)
    (folder / "a-link.mp4").symlink_to("b.mp4")  # sorts first: the target's name must still be the one kept
    out = tmp_path / "out"
    assert batch(str(folder), str(folder / "b.mp4"), "--output-dir", str(out), "-q") == 0
    assert outputs(out) == ["b.mkv"]
    warned = [r.getMessage() for r in caplog.records if "same file" in r.getMessage()]
    assert warned == [f"2 inputs are the same files as another input (a link, or named twice), processed once: "
                      f"{folder / 'a-link.mp4'} (= {folder / 'b.mp4'}), {folder / 'b.mp4'} (named twice)"]  # fmt: skip


def test_inputs_on_a_file_system_without_file_ids_are_all_kept(tmp_path, monkeypatch, caplog):
    """Windows gives st_ino 0 (and st_dev 0) where a file system has no file ids (some network shares):
    every video of the batch was taken for one file, and all but the first dropped as "the same file"."""
    from birefvid.batch.runner import expand_inputs

    folder = tmp_path / "share"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        (folder / name).write_bytes(b"a video")
    real_stat = Path.stat

    def no_ids(self, *args, **kwargs):
        st = real_stat(self, *args, **kwargs)
        return os.stat_result((st.st_mode, 0, 0, *tuple(st)[3:]))

    monkeypatch.setattr(Path, "stat", no_ids)
    found = expand_inputs([str(folder), str(folder / "b.mp4")])
    assert [f.path.name for f in found] == ["a.mp4", "b.mp4", "c.mp4"]  # b named twice is still one input
    assert "(named twice)" in caplog.text and "a.mp4 (=" not in caplog.text


def test_a_folder_of_camera_files_finds_mxf_and_avchd_clips(tmp_path):
    """A card dump's MXF (XDCAM, XAVC, P2, Canon, ARRI) and AVCHD (.MTS, .m2ts) clips, DV and a phone's .3gp are
    videos: given a folder, batch left them out without a word and reported every video done. A P2 card's
    sound-only OP-Atom MXF files (one channel a file) are the clips' sound, left out, not failed videos."""
    from media import make_sound_only

    from birefvid.batch.runner import expand_inputs

    folder = tmp_path / "card"
    folder.mkdir()
    names = ["A001C001.MXF", "b.mp4", "c.m2ts", "clip.dv", "phone.3gp", "00000.MTS", "hdv.m2t"]
    for name in [*names, "A001C001.XML", "sound.wav"]:  # sidecars and sound are not videos
        (folder / name).write_bytes(b"a video")
    make_sound_only(folder / "0001AB00.MXF", "pcm_s16le", 1920, container="mxf_opatom")  # a P2 card's AUDIO/ file
    assert sorted(f.path.name for f in expand_inputs([str(folder)])) == sorted(names)
    assert [f.path.name for f in expand_inputs([str(folder / "0001AB00.MXF")])] == ["0001AB00.MXF"]  # named: an input still


def test_sound_only_mxf_left_out_is_a_line_naming_its_subfolder(tmp_path, caplog):
    """The line saying sound-only MXF files were left out showed only with -v, and under --recursive named the
    folder given, not the subfolder (a P2 card's CONTENTS/AUDIO) that holds them."""
    import logging

    from media import make_sound_only

    from birefvid.batch.runner import expand_inputs
    from birefvid.cli import CliLogFormatter

    audio = tmp_path / "card" / "CONTENTS" / "AUDIO"
    audio.mkdir(parents=True)
    (tmp_path / "card" / "a.mp4").write_bytes(b"a video")
    for name in ("0001AB00.MXF", "0001AB01.MXF"):
        make_sound_only(audio / name, "pcm_s16le", 1920, container="mxf_opatom")
    with caplog.at_level(logging.WARNING):  # what the CLI shows without -v
        assert [f.path.name for f in expand_inputs([str(tmp_path / "card")], recursive=True)] == ["a.mp4"]
    [record] = [r for r in caplog.records if "sound only" in r.getMessage()]
    assert CliLogFormatter().format(record) == (
        f"birefvid: {audio}: 2 MXF files hold sound only (OP-Atom, one channel a file) and are left out")


def test_recursive_follows_linked_folders_but_not_back_up(tree, tmp_path, caplog):
    (tree / "s2" / "up").symlink_to("..", target_is_directory=True)  # a loop: clips/s2/up/s2/up/...
    (tree / "alias").symlink_to("s1", target_is_directory=True)  # the same videos again, under another name
    out = tmp_path / "out"
    assert batch(str(tree), "-r", "--output-dir", str(out), "-q") == 0
    assert outputs(out) == MIRRORED
    assert f"{tree / 'alias' / 'a.mp4'} (= {tree / 's1' / 'a.mp4'})" in caplog.text


def test_recursive_goes_past_a_subfolder_it_may_not_read(tree, tmp_path, caplog, monkeypatch):
    """An external drive's lost+found ended the walk in a traceback: the rest of the tree runs, with a warning."""
    (tree / "lost+found").mkdir()
    from fs_fixtures import unreadable_folders

    unreadable_folders(monkeypatch, "lost+found")
    out = tmp_path / "out"
    assert batch(str(tree), "-r", "--output-dir", str(out), "-q") == 0
    assert outputs(out) == MIRRORED
    assert f"{tree / 'lost+found'}: not read (Permission denied)" in caplog.text


def test_a_link_whose_target_is_elsewhere_is_processed_under_its_own_name(tmp_path):
    (tmp_path / "store").mkdir()
    keyframed_clip(tmp_path / "store" / "take.mp4", FRAMES)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "shot.mp4").symlink_to(tmp_path / "store" / "take.mp4")
    assert batch(str(folder), "--output-dir", str(tmp_path / "out"), "-q") == 0
    assert outputs(tmp_path / "out") == ["shot.mkv"]


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("birefvid: error:"), err
    return err[0]


def test_a_clash_in_a_subfolder_names_its_inputs(tree, tmp_path, capsys):
    (tree / "s1" / "a.mov").write_bytes((tree / "s1" / "a.mp4").read_bytes())
    out = tmp_path / "out"
    assert batch(str(tree), "-r", "--output-dir", str(out)) == 2
    assert _error(capsys) == f"birefvid: error: {tree / 's1' / 'a.mov'} and {tree / 's1' / 'a.mp4'} would both write s1/a.mkv; rename one or run them apart"
    assert not out.exists()  # refused before anything was made


def test_two_trees_writing_the_same_subfolder_clash(tree, tmp_path, capsys):
    other = tmp_path / "more"
    (other / "s1").mkdir(parents=True)
    (other / "s1" / "a.mp4").write_bytes((tree / "s1" / "a.mp4").read_bytes() + b"\0")  # another file, same place
    assert batch(str(tree), str(other), "-r", "--output-dir", str(tmp_path / "out")) == 2
    assert f"{tree / 's1' / 'a.mp4'} and {other / 's1' / 'a.mp4'} would both write s1/a.mkv" in _error(capsys)


def test_a_png_sequence_folder_cannot_hold_another_output(tree, tmp_path, capsys):
    """--ext png makes s1.mp4's output the folder s1/, where s1/a.mp4's frames would land too."""
    (tree / "s1.mp4").write_bytes((tree / "top.mp4").read_bytes())
    assert batch(str(tree), "-r", "--output-dir", str(tmp_path / "out"), "--ext", "png") == 2
    assert _error(capsys).startswith(f"birefvid: error: {tree / 's1.mp4'} would write the folder s1 and {tree / 's1' / 'a.mp4'} would write s1/a inside it")


def test_an_output_subfolder_blocked_by_a_file_is_one_line_before_any_work(tree, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "s1").write_text("a file where the subfolder goes")
    assert batch(str(tree), "-r", "--output-dir", str(out)) == 2
    assert f"cannot write {out / 's1' / 'a.mkv'}: {out / 's1'} is a file, not a folder" in _error(capsys)
    assert sorted(os.listdir(out)) == ["s1"]


def test_a_folder_of_photos_points_at_image(tmp_path, capsys):
    """rembg `p` and transparent-background `--source DIR` users give batch their photos: 'no video files' alone
    left them to guess that pictures are `image`'s job."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "shoe.jpg").write_bytes(b"a picture")
    assert batch(str(photos), "--output-dir", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"birefvid: error: no video files among the inputs; {photos} holds pictures: `birefvid image {photos} -o OUT` "
                   f"cuts out each one, `birefvid process {photos} -o OUT` takes them as the frames of one video"]  # fmt: skip


def test_pictures_beside_videos_are_named_with_the_command_for_them(tmp_path, caplog):
    """A shoot's folder of clips and stills: batch cut out the clips and left the stills without a word, where `image`
    names the videos beside its pictures. A still WebP is a picture; an animated one is a video, not named."""
    from PIL import Image

    shoot = tmp_path / "shoot"
    shoot.mkdir()
    keyframed_clip(shoot / "clip.mp4", FRAMES)
    for name in ("b.jpg", "a.png", "c.webp"):
        Image.new("RGB", (16, 16), "red").save(shoot / name)
    Image.new("RGB", (16, 16)).save(shoot / "moving.webp", save_all=True, append_images=[Image.new("RGB", (16, 16), "blue")], duration=100)
    assert batch(str(shoot), "--output-dir", str(tmp_path / "out"), "-q") == 0
    assert outputs(tmp_path / "out") == ["clip.mkv", "moving.mkv"]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"{shoot}: 3 pictures are not read (a.png, b.jpg, c.webp): batch takes videos; `birefvid image {shoot} -o OUT` cuts out pictures"]


def test_a_rerun_beside_its_own_animated_webp_outputs_names_no_pictures(tmp_path, caplog):
    """`--ext webp` written beside the inputs, then the same batch again (a watch folder's, a script's rerun): the
    first run's clip.webp is left out as its output, and the rerun warned '1 picture is not read (clip.webp)',
    sending the user to cut out the batch's own animated output with `image`."""
    clips = tmp_path / "clips"
    clips.mkdir()
    keyframed_clip(clips / "clip.mp4", FRAMES)
    for _ in range(2):
        assert batch(str(clips), "--output-dir", str(clips), "--ext", "webp", "-q") == 0
    assert sorted(p.name for p in clips.iterdir() if not p.name.startswith(".")) == ["clip.mp4", "clip.webp"]
    assert [r.getMessage() for r in caplog.records if "not read" in r.getMessage()] == []


def test_a_folder_holding_an_earlier_batchs_outputs_beside_its_videos_gives_only_the_videos(tmp_path, caplog):
    """Masks written beside the inputs (`--output-dir clips/`), then the same folder batched into another
    folder: clip.mkv was taken for an input and the run stopped on 'clips/a.mkv and clips/a.mp4 would both write'."""
    clips = tmp_path / "clips"
    clips.mkdir()
    keyframed_clip(clips / "a.mp4", FRAMES)
    keyframed_clip(clips / "b.mp4", FRAMES)
    assert batch(str(clips), "--output-dir", str(clips), "-q") == 0
    for flags in ([], ["-r"]):
        out = tmp_path / f"out{len(flags)}"
        assert batch(str(clips), *flags, "--output-dir", str(out), "--threshold", "0.5", "-q") == 0
        assert outputs(out) == ["a.mkv", "b.mkv"]
        assert sorted(manifest(out)["videos"]) == ["a.mkv", "b.mkv"]
    assert f"{clips} holds the outputs of an earlier batch (its .birefvid-batch): 2 videos in it are not searched" in caplog.text


def test_an_output_name_too_long_for_the_disk_is_one_line_naming_its_input(tree, tmp_path, capsys):
    """A 254-byte name (127 two-byte characters and .ts) is a valid input, but its .webm output is 256
    bytes: the run ended in an OSError 'File name too long' traceback (exit 1)."""
    long_input = tree / ("é" * 125 + "a.ts")
    long_input.write_bytes((tree / "top.mp4").read_bytes())
    out = tmp_path / "out"
    assert batch(str(tree), "--output-dir", str(out), "--ext", ".webm") == 2
    assert _error(capsys) == (f"birefvid: error: {long_input} would write {'é' * 125}a.webm, but its name is 256 bytes long, "
                              "over the 255 a file system takes; rename the input or pick a shorter --ext")  # fmt: skip
    assert not out.exists()  # refused before anything was made


@pytest.mark.parametrize("flags", [[], ["-r"]])
def test_a_link_to_a_video_that_is_gone_is_named_not_left_out_without_a_word(tmp_path, caplog, flags):
    folder = tmp_path / "in"
    folder.mkdir()
    keyframed_clip(folder / "a.mp4", FRAMES)
    (folder / "gone.mp4").symlink_to("/mnt/unplugged/gone.mp4")
    (folder / "notes.txt").symlink_to("nowhere.txt")  # not named as a video: not a word about it
    out = tmp_path / "out"
    assert batch(str(folder), *flags, "--output-dir", str(out), "-q") == 0
    assert outputs(out) == ["a.mkv"]
    assert f"{folder / 'gone.mp4'} is a link to /mnt/unplugged/gone.mp4, which does not exist: left out" in caplog.text
    assert "nowhere.txt" not in caplog.text


def test_a_disk_filling_up_leaves_no_empty_output_subfolder(tmp_path, capsys):
    """The disk filled on s2/b.mp4 (a full disk stops the run): out/s2/, made as its video started, stayed, empty,
    looking like output. The folders this run made for outputs never written go; s1's output, and an empty folder
    the user had made, stay; the rerun resumes."""
    from fs_fixtures import full_dir

    clips = tmp_path / "clips"
    for sub in ("s1", "s2", "s3"):
        (clips / sub).mkdir(parents=True)
    keyframed_clip(clips / "s1" / "a.mp4", 2, size=(32, 32))  # a few kB of ProRes 4444: fits
    keyframed_clip(clips / "s2" / "b.mp4", 8, size=(256, 192))  # far more than the disk's 128 kB
    keyframed_clip(clips / "s3" / "c.mp4", 2, size=(32, 32))
    with full_dir(tmp_path / "disk", "128k") as disk:
        out = disk / "out"
        (out / "s3").mkdir(parents=True)  # the user's, empty: not this run's to remove
        assert main(["batch", str(clips), "-r", "--output-dir", str(out), *MODEL, "--output", "alpha", "-q"]) == 2
        assert "the disk is full" in capsys.readouterr().err
        assert outputs(out) == ["s1/a.mov"]
        assert sorted(p.name for p in out.iterdir()) == [".birefvid-batch", "s1", "s3"]  # no s2/


def test_an_earlier_batchs_output_folder_is_not_named_as_a_subfolder_not_searched(tmp_path, caplog):
    """Run twice with the outputs inside the inputs' folder (masks, then alpha to compare), the second run warned
    that clips/masks, the first run's outputs, was a subfolder not searched, as if it held videos the user forgot;
    one holding a video of the user's beside the outputs is still named."""
    clips = tmp_path / "clips"
    clips.mkdir()
    keyframed_clip(clips / "a.mp4", FRAMES)
    assert batch(str(clips), "--output-dir", str(clips / "masks"), "-q") == 0
    caplog.clear()
    assert batch(str(clips), "--output-dir", str(clips / "matte"), "--threshold", "0.5", "-q") == 0
    assert "not searched" not in caplog.text
    (clips / "masks" / "take2.mp4").write_bytes((clips / "a.mp4").read_bytes())  # the user's: an input to name
    caplog.clear()
    assert batch(str(clips), "--output-dir", str(clips / "matte"), "--threshold", "0.5", "-q") == 0
    assert f"{clips}: 1 subfolder is not searched (masks)" in caplog.text


def test_recursive_does_not_follow_a_link_to_a_folder_above_the_named_one(tree, tmp_path, caplog):
    """Only a link back to a folder of the walk was stopped: one to the folder above the named one (``ln -s ../..``;
    a link to / or home) walked all of it, the named folder's siblings cut out as inputs (a link to / the whole disk).
    A watch's scan walked it every second."""
    from birefvid.batch.watch import scan

    (tmp_path / "elsewhere").mkdir()
    keyframed_clip(tmp_path / "elsewhere" / "x.mp4", FRAMES)  # beside the named folder: not an input of it
    (tree / "s2" / "up").symlink_to("../..", target_is_directory=True)  # tmp_path, which holds clips/
    out = tmp_path / "out"
    assert batch(str(tree), "-r", "--output-dir", str(out), "-q") == 0
    assert outputs(out) == MIRRORED
    assert f"{tree / 's2' / 'up'} is a link to {os.path.realpath(tmp_path)}, a folder that holds it: not followed" in caplog.text
    assert sorted(Path(p).relative_to(tree).as_posix() for p in scan(tree, out, recursive=True)) == ["s1/a.mp4", "s1/deep/long.mp4", "s2/a.mp4", "top.mp4"]


def test_ctrl_c_on_a_subfolders_video_leaves_no_empty_output_subfolder(tmp_path):
    """Ctrl-C while s2/b.mp4 was cut out left out/s2/ empty beside s1's output; the rerun resumes with s2's video."""
    import signal
    import subprocess
    import sys
    import time

    clips, out = tmp_path / "clips", tmp_path / "out"
    for sub in ("s1", "s2"):
        (clips / sub).mkdir(parents=True)
    keyframed_clip(clips / "s1" / "a.mp4", FRAMES)
    keyframed_clip(clips / "s2" / "b.mp4", 200)  # tens of seconds here: still running when the signal comes
    argv = ["batch", str(clips), "-r", "--output-dir", str(out), *MODEL, "--output", "mask", "--chunk-frames", "0", "-q"]
    run = subprocess.Popen([sys.executable, "-m", "birefvid.cli", *argv], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / "s2").is_dir() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # made as b.mp4's run starts (after s1/a.mkv is written)
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130, err
    assert outputs(out) == ["s1/a.mkv"]
    assert sorted(p.name for p in out.iterdir()) == [".birefvid-batch", "s1"]  # no empty s2/


def test_an_earlier_batchs_png_folders_are_not_listed_to_tell_it_holds_only_outputs(tmp_path, caplog, monkeypatch):
    """Whether clips/masks held only an earlier batch's outputs was told by stat'ing every file under it: its
    ``--ext png`` outputs are a folder of frames each, hundreds of thousands of PNGs (seconds to minutes on a
    network drive) read before the run, for a warning. A listed output's folder, and the work folder, are not
    listed now (counted at the source, ``os.scandir``); a video of the user's in masks/ is still found."""
    import birefvid.batch.runner as runner

    clips = tmp_path / "clips"
    clips.mkdir()
    keyframed_clip(clips / "a.mp4", FRAMES)
    assert batch(str(clips), "--output-dir", str(clips / "masks"), "--ext", "png", "-q") == 0
    assert sorted(p.name for p in (clips / "masks" / "a").iterdir()) == ["frame_000001.png", "frame_000002.png"]
    listed: list[str] = []
    scandir = os.scandir

    def counting(path=".", *args, **kwargs):
        listed.append(os.path.realpath(path))
        return scandir(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", counting)
    assert runner._only_outputs(clips / "masks")
    assert os.path.realpath(clips / "masks") in listed  # it did look
    assert not [p for p in listed if p.startswith(os.path.realpath(clips / "masks" / "a")) or ".birefvid-batch" in p]
    (clips / "masks" / "take2.mp4").write_bytes((clips / "a.mp4").read_bytes())  # the user's: masks is no longer only outputs
    assert not runner._only_outputs(clips / "masks")
    (clips / "masks" / "take2.mp4").unlink()
    (clips / "masks" / "b").mkdir()
    (clips / "masks" / "b" / "take3.mov").write_bytes((clips / "a.mp4").read_bytes())  # deeper, beside the PNG folder
    assert not runner._only_outputs(clips / "masks")
