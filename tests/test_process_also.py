"""`birefvid process --also KIND=PATH` / `process_video(also=...)`: several outputs from one model pass.

Each extra output must hold what a run of its own writes, with the main output's frame times and
sound, from one ``Segmenter.predict`` call a batch; a failure leaves none of them; a bad ``--also``
is one error line before the model loads.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from birefvid.api import build_file_job, process_video
from birefvid.cli import main
from birefvid.errors import PipelineError, SinkError
from birefvid.io.formats import has_alpha
from birefvid.job import FileJob
from birefvid.runtime.segmenter import Segmenter
from media import audio_duration, make_video, read_video
from process_fixtures import FailingRedKey, decoded_times, make_scene, partial_leftovers, red_key_segmenter

SIZE = (64, 48)
N = 6


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    """6 lossless frames of the red-square scene, 64x48, with sound."""
    return make_scene(tmp_path_factory.mktemp("in") / "scene.mov", N, SIZE, textured=True).path


@pytest.fixture
def predict_calls(monkeypatch) -> list[int]:
    """The frame count of every ``Segmenter.predict`` call."""
    calls: list[int] = []
    real = Segmenter.predict
    monkeypatch.setattr(Segmenter, "predict", lambda self, images, **kw: calls.append(images.shape[0]) or real(self, images, **kw))
    return calls


def test_extra_outputs_are_what_their_own_runs_write_from_one_model_pass(tmp_path, scene, predict_calls):
    seg = red_key_segmenter()
    extras = [("mask", tmp_path / "matte.mkv"), ("green", tmp_path / "green.mp4"), ("composite", tmp_path / "white.webm"),
              ("foreground", tmp_path / "fgr.mkv")]
    report = process_video(scene, tmp_path / "cut.mov", segmenter=seg, background="white", key_color="#00b140", also=extras)
    assert sum(predict_calls) == N  # the model saw each frame once, for five outputs
    assert report["output"] == str(tmp_path / "cut.mov") and report["also"] == [str(p) for _, p in extras]
    main_times = decoded_times(tmp_path / "cut.mov")
    assert len(main_times) == N
    for kind, path in extras:
        alone = tmp_path / f"alone-{path.name}"
        process_video(scene, alone, segmenter=seg, kind=kind, background="white" if kind == "composite" else None,
                      key_color="#00b140" if kind == "green" else "#00ff00")  # fmt: skip
        as_format = "gray" if kind == "mask" else "rgb24"
        got, want = read_video(path, as_format), read_video(alone, as_format)
        assert len(got.images) == N and decoded_times(path) == main_times, path
        # lossy ones within 4 levels: two x264 encodes of the same pictures came out up to 2 apart on a loaded machine
        assert max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(got.images, want.images)) <= (0 if kind == "mask" else 4), path
        assert audio_duration(path) == pytest.approx(audio_duration(alone), abs=0.03), path
    assert partial_leftovers(tmp_path) == []


def test_composite_outputs_of_one_background_video_decode_it_once(tmp_path, scene, monkeypatch):
    """Each composite output opened its own decoder of the --background video and decoded it all again (a 720p one:
    ~8 ms of CPU a frame an output, on the compose thread); they share one now, and each still holds what a run of its
    own writes."""
    import av

    from birefvid.io.looping_source import LoopingVideoSource

    background = tmp_path / "bg.mkv"
    with av.open(str(background), "w") as container:  # 4 grey levels at 10 fps: changes under the 6 frames
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = 80, 60, "yuv420p"
        for level in (30, 90, 150, 210):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.full((60, 80, 3), level, np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    opened: list[Path] = []
    real = LoopingVideoSource.__init__
    monkeypatch.setattr(LoopingVideoSource, "__init__", lambda self, path, **kw: opened.append(path) or real(self, path, **kw))
    seg = red_key_segmenter()
    process_video(scene, tmp_path / "one.mkv", segmenter=seg, kind="composite", background=str(background),
                  also=[("composite", tmp_path / "two.mkv"), ("mask", tmp_path / "matte.mkv")])  # fmt: skip
    assert len(opened) == 1, opened
    process_video(scene, tmp_path / "alone.mkv", segmenter=seg, kind="composite", background=str(background))
    alone = read_video(tmp_path / "alone.mkv", "rgb24").images
    assert len(set(int(f.mean()) for f in alone)) > 1  # the background changes under the frames
    for name in ("one.mkv", "two.mkv"):  # x264 (lossy): two encodes of the same pictures may differ by a level or two
        got = read_video(tmp_path / name, "rgb24").images
        assert len(got) == len(alone) and max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(got, alone)) <= 4, name  # a wrong grey: 60 off


def test_cli_writes_every_output_with_the_tiny_model_and_reports_them(tmp_path, scene, predict_calls, capsys):
    report = tmp_path / "report.json"
    code = main(["process", str(scene), "-o", str(tmp_path / "cut.webm"), "--also", f"mask={tmp_path / 'matte.mkv'}",
                 "--also", f"green={tmp_path / 'green.mp4'}", "--key-color", "#00b140", "--model", "tiny", "--resolution", "64",
                 "--device", "cpu", "--smooth", "none", "-q", "--report", str(report)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert sum(predict_calls) == N
    data = json.loads(report.read_text())
    assert data["also"] == [str(tmp_path / "matte.mkv"), str(tmp_path / "green.mp4")]
    assert FileJob.from_dict(data["job"]).also[1].key_color == "#00b140"
    for name in ("cut.webm", "matte.mkv", "green.mp4"):
        assert len(decoded_times(tmp_path / name)) == N and audio_duration(tmp_path / name), name


def test_a_failing_run_leaves_none_of_its_outputs(tmp_path, scene):
    with pytest.raises(PipelineError):
        process_video(scene, tmp_path / "cut.mov", segmenter=red_key_segmenter(FailingRedKey(fail_at=3)), smooth="none",
                      also=[("mask", tmp_path / "matte.mkv"), ("alpha", tmp_path / "frames")])  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("failure", [SinkError("finishing green.mp4 failed: the disk is full"), KeyboardInterrupt()])
def test_an_output_failing_to_finish_leaves_none_in_place(tmp_path, scene, monkeypatch, failure):
    """The second output's sound fails to finish (a full disk), or Ctrl-C comes while its encoder flushes: the first,
    finished already, must not be in place either (it was renamed before the second was flushed, with no word of it)."""
    from birefvid.io.audio import AudioTracks

    calls, real = [], AudioTracks.finish

    def finish(self) -> None:  # the main output's sound finishes; the extra one's fails
        calls.append(1)
        if len(calls) == 2:
            raise failure
        real(self)

    monkeypatch.setattr(AudioTracks, "finish", finish)
    with pytest.raises(type(failure)):
        process_video(scene, tmp_path / "cut.mov", segmenter=red_key_segmenter(), smooth="none", also=[("green", tmp_path / "green.mp4")])
    assert len(calls) == 2 and sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_failing_rename_takes_back_the_outputs_already_in_place(tmp_path, scene):
    """The renames come one after another: the extra output's folder removed during the run fails its rename after
    the main output's (and the PNG sequence's) were made; those are taken back, so the run's outputs appear together
    or not at all (the main output was left in place and a script saw a failed run beside a finished file)."""
    import shutil

    gone = tmp_path / "gone"
    gone.mkdir()
    with pytest.raises(SinkError, match=r"cannot move the finished output onto .*green.mp4.*; .*cut.mkv, .*frames were taken back: "
                                        r"none of this run's outputs is in place$"):  # fmt: skip
        process_video(scene, tmp_path / "cut.mkv", kind="mask", segmenter=red_key_segmenter(), smooth="none",
                      also=[("alpha", tmp_path / "frames"), ("green", gone / "green.mp4")], on_start=lambda total: shutil.rmtree(gone))  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_failing_rename_with_overwrite_puts_back_what_the_others_replaced(tmp_path, scene):
    """With --overwrite the outputs taken back had replaced a previous run's: those come back as they were (a file and a
    PNG folder), and the output whose rename failed (a folder put at its name meanwhile) is left alone."""
    (tmp_path / "cut.mkv").write_bytes(b"last run's matte")
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "000001.png").write_bytes(b"last run's frame")
    green = tmp_path / "green.mp4"

    def block(total: int) -> None:  # another program puts a folder, with a file in it, where the green output goes
        green.mkdir()
        (green / "theirs.txt").write_text("theirs")

    with pytest.raises(SinkError, match=r"cannot move the finished output onto .*green.mp4.*; .*taken back: none of this run's outputs "
                                        r"is in place; what they replaced is put back$"):  # fmt: skip
        process_video(scene, tmp_path / "cut.mkv", kind="mask", segmenter=red_key_segmenter(), smooth="none", overwrite=True,
                      also=[("alpha", tmp_path / "frames"), ("green", green)], on_start=block)  # fmt: skip
    assert (tmp_path / "cut.mkv").read_bytes() == b"last run's matte"
    assert [p.name for p in (tmp_path / "frames").iterdir()] == ["000001.png"]
    assert (tmp_path / "frames" / "000001.png").read_bytes() == b"last run's frame"
    assert (green / "theirs.txt").read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mkv", "frames", "green.mp4"]


def test_outputs_replaced_with_overwrite_leave_nothing_aside(tmp_path, scene):
    """A run that succeeds with --overwrite replaces the previous outputs and keeps no hidden copy of them."""
    (tmp_path / "cut.mkv").write_bytes(b"last run's matte")
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "000001.png").write_bytes(b"last run's frame")
    process_video(scene, tmp_path / "cut.mkv", kind="mask", segmenter=red_key_segmenter(), smooth="none", overwrite=True,
                  also=[("alpha", tmp_path / "frames")])  # fmt: skip
    assert len(decoded_times(tmp_path / "cut.mkv")) == N and len(list((tmp_path / "frames").iterdir())) == N
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mkv", "frames"]



def test_ctrl_c_just_after_an_output_is_renamed_takes_it_back_too(tmp_path, scene):
    """Ctrl-C pressed as often as gives up the renames (``PRESSES_TO_ABANDON``), the last press landing just after the
    main output's rename (as its "wrote" line is logged): that output was not yet counted as in place, so it stayed there
    alone, and the file it replaced stayed in a hidden .cut.mkv.old-* folder. Now it is taken back with the others."""
    import logging
    import os
    import signal

    from birefvid.errors import PRESSES_TO_ABANDON

    (tmp_path / "cut.mkv").write_bytes(b"last run's matte")

    class PressesCtrlC(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("wrote ") and record.getMessage().endswith(str(tmp_path / "cut.mkv")):
                for _ in range(PRESSES_TO_ABANDON):  # real SIGINTs, through the handler that holds them while renaming
                    os.kill(os.getpid(), signal.SIGINT)

    logger, presses = logging.getLogger("birefvid"), PressesCtrlC()
    level = logger.level
    logger.addHandler(presses)
    logger.setLevel(logging.INFO)
    try:
        with pytest.raises(KeyboardInterrupt):
            process_video(scene, tmp_path / "cut.mkv", kind="mask", segmenter=red_key_segmenter(), smooth="none", overwrite=True,
                          also=[("alpha", tmp_path / "frames")])  # fmt: skip
    finally:
        logger.removeHandler(presses)
        logger.setLevel(level)
    assert (tmp_path / "cut.mkv").read_bytes() == b"last run's matte"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mkv"]

@pytest.mark.parametrize("small_one, frames, disk", [("main", 60, "128k"), ("extra", 150, "1m")])
def test_the_free_space_watch_counts_each_disk_s_own_outputs(tmp_path, monkeypatch, small_one, frames, disk):
    """A matte on a nearly full disk and a ProRes beside it on a roomy one: the ProRes's bytes were projected against
    the matte's disk and stopped a run that fitted; an output on a disk of its own went unwatched, filling it."""
    import birefvid.runtime.disk_watch as disk_watch
    from fs_fixtures import full_dir

    for name, value in (("FIRST_CHECK_SECONDS", 0.0), ("EVERY_SECONDS", 0.0), ("MIN_FRAMES", 4)):
        monkeypatch.setattr(disk_watch, name, value)
    src = make_scene(tmp_path / "in.mov", frames, (256, 192), textured=True, with_audio=False).path  # ProRes ~12 kB a frame, the matte ~0.3
    with full_dir(tmp_path / "small", disk) as small:  # the muxer writes 256 kB at a time: the extra's disk holds a few of them
        if small_one == "main":  # the matte fits on its disk: the run completes
            process_video(src, small / "matte.mkv", kind="mask", segmenter=red_key_segmenter(), smooth="none", batch_size=4,
                          also=[("alpha", tmp_path / "big.mov")])  # fmt: skip
            assert len(decoded_times(small / "matte.mkv")) == frames and len(decoded_times(tmp_path / "big.mov")) == frames
            return
        with pytest.raises(SinkError, match=r"the output will not fit on its disk: .*/small has \d+ MB free; stopped now"):
            process_video(src, tmp_path / "matte.mkv", kind="mask", segmenter=red_key_segmenter(), smooth="none", batch_size=4,
                          also=[("alpha", small / "big.mov")])  # fmt: skip
        assert list(small.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["in.mov", "small"]


def test_an_existing_extra_output_is_refused_before_any_work(tmp_path, scene, predict_calls):
    (tmp_path / "matte.mkv").write_bytes(b"keep me")
    with pytest.raises(SinkError, match="matte.mkv"):
        process_video(scene, tmp_path / "cut.mov", segmenter=red_key_segmenter(), also=["mask=" + str(tmp_path / "matte.mkv")])
    assert predict_calls == [] and sorted(p.name for p in tmp_path.iterdir()) == ["matte.mkv"]
    assert (tmp_path / "matte.mkv").read_bytes() == b"keep me"


def test_an_output_taken_meanwhile_does_not_discard_the_others(tmp_path, scene):
    """Another program wrote an --also file during the run: it is kept, this run's goes beside it as NAME (2), and the
    other outputs are committed too, not thrown away with it; the error and the report name where each went."""
    from birefvid.errors import OutputKeptError

    green = tmp_path / "green.mp4"
    with pytest.raises(OutputKeptError, match=r"green \(2\)\.mp4"):
        process_video(scene, tmp_path / "cut.mkv", kind="mask", segmenter=red_key_segmenter(), smooth="none", also=[("green", green)],
                      report_path=tmp_path / "r.json", on_start=lambda total: green.write_bytes(b"someone else's"))  # fmt: skip
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["output"] == str(tmp_path / "cut.mkv") and report["also"] == [str(tmp_path / "green (2).mp4")]
    assert green.read_bytes() == b"someone else's" and len(decoded_times(tmp_path / "cut.mkv")) == N
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mkv", "green (2).mp4", "green.mp4", "r.json"]


def test_rvms_fgr_name_writes_the_foreground_as_output_and_as_also(tmp_path, scene, red_key):
    # lossless APNG: two x264 encodes of the same pictures came out 1-2 levels apart in ~1 run in 150 on a loaded
    # machine (the YUV pictures both encoders were handed were the same, their packets not), which is not what this test is about
    fgr, again = tmp_path / "fgr.apng", tmp_path / "again.apng"
    assert main(["process", str(scene), "-o", str(fgr), "--output", "fgr", "--also", f"fgr={again}", "--smooth", "none", "-q"]) == 0
    got, want = read_video(fgr, "rgba"), read_video(again, "rgba")
    assert len(got.images) == N and not has_alpha(got.pix_fmt)  # opaque, no alpha plane
    assert all(np.array_equal(a, b) for a, b in zip(got.images, want.images))


def test_rvms_names_are_taken_by_the_python_api_too(tmp_path, scene):
    """kind="fgr" (RVM's name) was refused by process_video's own kind= while --output fgr worked; pha is the matte."""
    fgr, pha = tmp_path / "fgr.mkv", tmp_path / "pha.mkv"
    process_video(scene, fgr, kind="fgr", also=[("pha", pha)], segmenter=red_key_segmenter(), smooth="none")
    job = build_file_job(scene, fgr, kind="fgr", also=["pha=p.mkv"])
    assert job.output.kind == "foreground" and job.also[0].kind == "mask"
    assert not has_alpha(read_video(fgr, "rgba").pix_fmt) and len(read_video(pha, "gray").images) == N


@pytest.mark.parametrize("also, phrases", [
    (["matte.mkv"], ["--also takes KIND=PATH", "'matte.mkv'"]),
    (["matte=matte.mkv"], ["unknown kind 'matte'", "alpha, mask, foreground, green, composite, blur"]),
    (["mask=cut.mov"], ["the outputs", "cut.mov", "same file"]),
    (["mask=m.mkv", "green=m.mkv"], ["same file"]),
    (["composite=c.mp4"], ["--also composite=c.mp4 needs --background"]),
])  # fmt: skip
def test_bad_also_is_one_error_line(tmp_path, scene, capsys, monkeypatch, also, phrases):
    monkeypatch.chdir(tmp_path)
    args = [a for text in also for a in ("--also", text)]
    assert main(["process", str(scene), "-o", "cut.mov", *args, "--model", "tiny", "-q"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("birefvid: error:"), lines
    assert all(p in lines[0] for p in phrases), lines[0]
    assert list(tmp_path.iterdir()) == []


def test_an_extra_output_needing_another_reading_of_the_input_is_refused(tmp_path, capsys, predict_calls):
    """A GIF of a video with non-square pixels gets square ones; a .mov beside it keeps the shape: one run cannot do both."""
    clip = make_video(tmp_path / "anamorphic.mp4", n_frames=2, size=SIZE, sample_aspect_ratio=Fraction(4, 3), with_audio=False).path
    code = main(["process", str(clip), "-o", str(tmp_path / "cut.mov"), "--also", f"alpha={tmp_path / 'cut.gif'}", "--model", "tiny", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0, err
    assert "--also alpha=" in err and "square pixels" in err and "run of its own" in err
    assert predict_calls == [] and sorted(p.name for p in tmp_path.iterdir()) == ["anamorphic.mp4"]


def test_the_job_description_round_trips_with_its_extra_outputs(tmp_path):
    job = build_file_job("in.mp4", "cut.mov", also=[("mask", "matte.mkv"), "composite=C:\\out\\bg=1.mp4"], background="white", threshold=0.5)
    assert [(o.kind, o.path) for o in job.also] == [("mask", "matte.mkv"), ("composite", "C:\\out\\bg=1.mp4")]
    assert job.output.background is None and job.also[1].background == "white" and job.also[0].matte.threshold == 0.5
    assert FileJob.from_json(job.to_json()) == job
    assert "also" not in build_file_job("in.mp4", "cut.mov").to_dict()  # a one-output job's JSON (and batch fingerprints) as before
