"""The job description: built by the CLI and the API alike, validated once, JSON round trip."""

from __future__ import annotations

import argparse
import json
import os
from fractions import Fraction
from pathlib import Path

import pytest

from birefvid.api import build_file_job, build_live_job, iter_masks, process_video
from birefvid.commands import process as process_cmd
from birefvid.errors import ConfigError, cli_naming
from birefvid.job import BACKBONE_NAMES, FileJob, InferenceSpec, OutputSpec, SmoothingSpec, SourceSpec


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    process_cmd.register(parser)
    return parser.parse_args(list(argv))


def test_job_round_trips_through_json():
    job = build_file_job(
        "in.mp4", "out.mov", kind="composite", background="beach.jpg", resolution="512x288", smooth="ema",
        codec="prores_ks", crf=None, bitrate="8M", audio=False, overwrite=True, batch_size=2, fps=12.5,
    )  # fmt: skip
    text = job.to_json()
    again = FileJob.from_json(text)
    assert again == job
    assert again.inference.resolution == (512, 288)  # a tuple again, not the JSON list
    data = json.loads(text)
    assert data["schema"] == "birefvid.job/1" and data["type"] == "FileJob"
    assert data["output"]["background"] == "beach.jpg" and data["inference"]["resolution"] == [512, 288]


def test_cli_and_api_build_the_same_job():
    args = _parse("talk.mp4", "-o", "talk.webm", "--output", "blur", "--blur-sigma", "9", "--no-audio",
                  "--resolution", "256", "--smooth", "none", "--model", "tiny", "--device", "cpu", "--backend", "onnxruntime")  # fmt: skip
    from_cli = process_cmd.job_from_args(args)
    from_api = build_file_job("talk.mp4", "talk.webm", kind="blur", blur_sigma=9.0, audio=False, resolution=256,
                              smooth="none", model="tiny", device="cpu", backend="onnxruntime")  # fmt: skip
    assert from_cli == from_api
    assert from_cli.inference.backend == "onnxruntime"


def test_live_cli_passes_backend_precision_aspect_and_matte_to_the_job():
    from birefvid.commands import live as live_cmd

    parser = argparse.ArgumentParser()
    live_cmd.register(parser)
    args = parser.parse_args(["--source", "0", "--sink", "out.mp4", "--backend", "torch", "--precision", "fp32", "--keep-aspect",
                              "--threshold", "0.4", "--shrink", "2", "--feather", "1.5"])  # fmt: skip
    job = live_cmd.job_from_args(args)
    assert (job.inference.backend, job.inference.precision, job.inference.keep_aspect) == ("torch", "fp32", True)
    assert (job.effect.matte.threshold, job.effect.matte.grow, job.effect.matte.feather) == (0.4, -2, 1.5)


def test_green_and_blur_have_one_default_in_every_command_and_the_api():
    """live spelt its own '#00ff00' and 16.0 where process, batch and image share the job's: one could drift from the rest."""
    import inspect

    from birefvid.commands import live as live_cmd
    from birefvid.job import BLUR_SIGMA, KEY_COLOR, EffectSpec

    parser = argparse.ArgumentParser()
    live_cmd.register(parser)
    live = live_cmd.job_from_args(parser.parse_args(["--source", "0", "--sink", "out.mp4"]))
    assert (live.effect.key_color, live.effect.blur_sigma) == (KEY_COLOR, BLUR_SIGMA) == (EffectSpec().key_color, EffectSpec().blur_sigma)
    assert (OutputSpec("o.mp4").key_color, OutputSpec("o.mp4").blur_sigma) == (KEY_COLOR, BLUR_SIGMA)
    for build in (build_file_job, build_live_job):
        params = inspect.signature(build).parameters
        assert (params["key_color"].default, params["blur_sigma"].default) == (KEY_COLOR, BLUR_SIGMA)
    helps = {a.dest: a.help for a in parser._actions}
    assert f"(default {KEY_COLOR})" in helps["key_color"] and f"(default {BLUR_SIGMA:g})" in helps["blur_sigma"]


def test_live_preset_reaches_the_job_and_needs_a_recording():
    from birefvid.api import build_live_job
    from birefvid.commands import live as live_cmd
    from birefvid.job import LiveJob

    parser = argparse.ArgumentParser()
    live_cmd.register(parser)
    job = live_cmd.job_from_args(parser.parse_args(["--source", "0", "--sink", "window", "--sink", "rec.mp4", "--preset", "ultrafast"]))
    assert job.record_preset == "ultrafast" and LiveJob.from_json(job.to_json()) == job
    for sinks in (["window"], ["http://127.0.0.1:8080", "rtsp://127.0.0.1:8554/out"]):
        with cli_naming(), pytest.raises(ConfigError, match="--preset sets the encoder of a recording; give a file --sink"):
            build_live_job("0", sinks, record_preset="ultrafast")


@pytest.mark.parametrize("sinks", [["rec.gif"], ["window", "rec.webp", "rec.apng"]])
def test_a_microphone_into_animated_pictures_only_is_refused(sinks):
    # a GIF holds no sound: the microphone was opened and recorded into nothing, without a word
    from birefvid.api import build_live_job

    with cli_naming(), pytest.raises(ConfigError, match="a GIF, WebP or APNG holds no sound"):
        build_live_job("clip.mp4", sinks, realtime=True, audio_device="default")
    assert build_live_job("clip.mp4", [*sinks, "rec.mkv"], realtime=True, audio_device="default").source.audio_device == "default"


@pytest.mark.parametrize(
    "options, api_words, cli_words",
    [
        (dict(kind="composite"), "kind='composite' needs background", "--output composite needs --background"),
        (dict(background="red"), "background is only used with kind='composite', not kind='alpha'", "--background is only used with --output composite, not --output alpha"),
        (dict(model="tiny", weights="w.pth"), "use either model or weights", "use either --model or --weights"),
        (dict(smooth="wobble"), "unknown smooth 'wobble'", "unknown --smooth 'wobble'"),
        (dict(batch_size=0), "batch_size must be at least 1", "--batch-size must be at least 1"),
        (dict(precision="fp8"), "unknown precision 'fp8'", "unknown --precision 'fp8'"),
        (dict(backend="tensorflow"), "unknown backend 'tensorflow'", "unknown --backend 'tensorflow'"),
        (dict(backbone="resnet50"), "unknown backbone 'resnet50'", "unknown --backbone 'resnet50'"),
        (dict(blur_sigma=0), "blur_sigma must be a positive number of pixels", "--blur-sigma must be a positive number of pixels"),
        # inf passed, and the compositor's int(inf // 8) ended the run in a traceback (image, process and live alike)
        (dict(kind="blur", blur_sigma=float("inf")), "blur_sigma must be a positive number of pixels (e.g. 16), got inf", "--blur-sigma must be a positive"),
        (dict(resolution="100"), "resolution 100x100 must be multiples of 32", "resolution 100x100 must be multiples of 32"),
    ],
)
def test_validation_names_the_option_as_the_user_typed_it(options, api_words, cli_words):
    with pytest.raises(ConfigError) as api_error:
        build_file_job("in.mp4", "out.mov", **options)
    assert api_words in str(api_error.value)
    with cli_naming(), pytest.raises(ConfigError) as cli_error:
        build_file_job("in.mp4", "out.mov", **options)
    assert cli_words in str(cli_error.value)


@pytest.mark.parametrize("argv, words", [
    (["--output", "alpha", "--key-color", "#00b140"], "--key-color is only used with --output green or --also green=PATH, not --output alpha"),
    (["--output", "composite", "--background", "red", "--blur-sigma", "30"], "--blur-sigma is only used with --output blur or --also blur=PATH, not --output composite"),
    (["--smooth", "ema", "--smooth-window", "5"], "--smooth-window is only used with --smooth lookahead, not --smooth ema"),
    (["--output", "mask", "--no-foreground"], "--no-foreground is only used with an output in colour .* not --output mask"),
    # as the others: it named --output composite alone, though --also composite=PATH uses it too, and not the output given
    (["--output", "alpha", "--background", "red"], "--background is only used with --output composite or --also composite=PATH, not --output alpha"),
    (["--background", "red", "--also", "mask=m.mkv"], "--background is only used with --output composite or --also composite=PATH, not --output alpha"),
])
def test_an_option_the_output_or_smoother_does_not_use_is_refused(argv, words):
    """They were ignored without a word: a user asking for a wider window got the recursive blend as it is."""
    with cli_naming(), pytest.raises(ConfigError, match=words):
        process_cmd.job_from_args(_parse("talk.mp4", "-o", "talk.mov", *argv))
    job = process_cmd.job_from_args(_parse("talk.mp4", "-o", "talk.mov"))  # not given: the documented defaults
    assert (job.output.key_color, job.output.blur_sigma, job.smoothing.window) == ("#00ff00", 16.0, 2)


def test_the_api_refuses_a_smooth_window_its_smoother_does_not_use():
    """``process_video(..., smooth="flow", smooth_window=5)`` ran the recursive blend as it is, and its report's job said
    ``{"kind": "flow", "window": 5}``, a window no frame saw; the command line refused it already. ``iter_masks`` too."""
    for smooth in ("flow", "ema", "none"):
        with pytest.raises(ConfigError, match=f"smooth_window is only used with smooth.* lookahead, not smooth.* {smooth}"):
            build_file_job("in.mp4", "out.mov", smooth=smooth, smooth_window=5)
        with pytest.raises(ConfigError, match="smooth_window is only used with"):
            next(iter_masks("in.mp4", smooth=smooth, smooth_window=5))
        assert build_file_job("in.mp4", "out.mov", smooth=smooth).smoothing == SmoothingSpec(smooth, 2)  # type: ignore[arg-type]
    assert build_file_job("in.mp4", "out.mov", smooth="lookahead", smooth_window=5).smoothing.window == 5


def test_smooth_window_has_an_upper_limit():
    """100000 was taken: 200001 whole frames held in memory until the run ran out of it, for a median no longer about flicker."""
    for window in ("13", "100000", "-1"):
        with cli_naming(), pytest.raises(ConfigError, match=r"--smooth-window is the frames on each side of the median, 0 to 12, got -?\d+ \(it holds"):
            process_cmd.job_from_args(_parse("talk.mp4", "-o", "talk.mov", "--smooth-window", window))
    assert process_cmd.job_from_args(_parse("talk.mp4", "-o", "talk.mov", "--smooth-window", "12")).smoothing.window == 12


def test_live_foreground_with_the_matte_alone_is_refused_and_kept_for_a_switch_from_none():
    """--effect mask draws no colours, so --foreground was ignored without a word; with none it is used once b, g or r switches."""
    with cli_naming(), pytest.raises(ConfigError, match="--foreground estimates colours at soft edges; --effect mask draws the matte alone"):
        build_live_job("0", ["window"], effect="mask", foreground=True)
    assert build_live_job("0", ["window"], effect="none", foreground=True).effect.foreground


@pytest.mark.parametrize("command, argv, words", [
    # "" (an unset shell variable) meant the current folder: its pictures were cut out as a sequence, outputs written into it
    ("process", ["", "-o", "o.mov"], "the input path is empty"),
    ("process", ["in.mp4", "-o", ""], "the output path is empty"),
    ("batch", ["", "-o", "out"], "the input path is empty"),
    ("batch", ["in.mp4", "-o", " "], "the output path is empty"),
    ("image", ["in.png", "-o", ""], "the output path is empty"),
])
def test_an_empty_path_is_refused_not_taken_for_the_current_folder(tmp_path, monkeypatch, capsys, command, argv, words):
    from birefvid.cli import main

    monkeypatch.chdir(tmp_path)
    assert main([command, *argv, "--model", "tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command, out, words", [("process", "o.mov", "is a pipe, and inputs are read more than once"),
                                                  ("image", "o.png", "is a pipe, and a picture file is opened more than once; name - to read a picture piped in"),
                                                  ("batch", "out", "is a pipe, and inputs are read more than once")])  # fmt: skip
def test_a_named_pipe_input_is_refused_not_waited_on(tmp_path, monkeypatch, capsys, command, out, words):
    """A named pipe (or /dev/stdin fed by |) is read once only, and inputs are opened more than once: the second
    open waited for a writer, and the run hung without a word."""
    from birefvid.cli import main

    fifo = tmp_path / "feed.mp4"
    os.mkfifo(fifo)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main([command, str(fifo), "-o", out, "--model", "tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{fifo} {words}" in err[0], err
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("command, args, words", [
    ("process", ["-o", "{fifo}", "--overwrite"], "{fifo} is a pipe, and an output is written under a temporary name"),
    ("process", ["-o", "o.mov", "--also", "mask={fifo}", "--overwrite"], "{fifo} is a pipe, and an output is written under a temporary name"),
    ("process", ["-o", "o.mov", "--output", "composite", "--background", "{fifo}"], "background {fifo} is a pipe, and a background is read more than once"),
    ("image", ["-o", "{fifo}", "--overwrite"], "{fifo} is a pipe, and an output is written under a temporary name"),
    ("batch", ["-o", "out", "--output", "composite", "--background", "{fifo}"], "background {fifo} is a pipe, and a background is read more than once"),
])  # fmt: skip
def test_a_named_pipe_output_or_background_is_refused_in_words_that_fit(tmp_path, monkeypatch, capsys, command, args, words):
    """A pipe as -o or --also was 'output exists (use --overwrite)', and with --overwrite a file was renamed over it, its
    reader left waiting; as --background it was 'background not found'."""
    from birefvid.cli import main

    fifo = tmp_path / "feed.mkv"
    os.mkfifo(fifo)
    source, work = _input_in_empty_workdir(command, tmp_path, monkeypatch)
    assert main([command, source, *(a.format(fifo=fifo) for a in args), "--model", "tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words.format(fifo=fifo) in err[0], err
    assert fifo.is_fifo() and list(work.iterdir()) == []


def test_a_named_pipe_background_of_a_live_run_is_refused(tmp_path):
    """live --effect replace --background PIPE: the same line as process, where open_background said 'not found'."""
    from birefvid.job import EffectSpec

    fifo = tmp_path / "bg.mp4"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is a pipe, and a background is read more than once"):
        EffectSpec(effect="replace", background=str(fifo)).validate()


@pytest.mark.parametrize("command", ["process", "image"])
def test_an_output_name_too_long_for_any_disk_is_one_line(tmp_path, monkeypatch, capsys, command):
    """A 260-byte name (a title pasted whole) ended in OSError 'File name too long' in a traceback, exit 1."""
    import cv2
    import numpy as np

    from birefvid.cli import main

    if command == "process":
        source = str(Path(__file__).resolve().parent.parent / "samples" / "scene.mp4")
    else:
        source = str(tmp_path / "in.png")
        cv2.imwrite(source, np.full((48, 64, 3), 128, np.uint8))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main([command, source, "-o", "a" * 256 + ".png", "--model", "tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "its name is 260 bytes long, over the 255" in err[0], err
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("command, side", [("process", "--report"), ("image", "--report"), ("batch", "--progress-json")])
def test_a_side_file_name_too_long_for_any_disk_is_one_line(tmp_path, monkeypatch, capsys, command, side):
    """A --report or --progress-json named with 84 Japanese characters (257 bytes) ended in OSError 'File name too
    long' in a traceback, exit 1, as the output's own name did."""
    from birefvid.cli import main

    source, work = _input_in_empty_workdir(command, tmp_path, monkeypatch)
    name = "\u3042" * 84 + ".json"  # 84 x 3 + 5 bytes
    out = "out" if command == "batch" else ("o.png" if command == "image" else "o.mov")
    assert main([command, source, "-o", out, side, name, "--model", "tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("birefvid: error: cannot write") and "its name is 257 bytes long, over the 255" in err[0], err
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("source, flag, words", [
    ("0", "realtime", "--realtime plays a video file at its own rate; 0 is a camera"),
    ("rtsp://cam.local/1", "loop", "--loop plays a video file again at its end; rtsp://cam.local/1 is a live stream"),
    ("udp://127.0.0.1:5000", "realtime", "is a live stream"),
])
def test_file_only_source_options_on_a_camera_or_stream_are_refused(source, flag, words):
    """They were ignored without a word (a stream never ends, a camera is live already)."""
    with cli_naming(), pytest.raises(ConfigError, match=words):
        build_live_job(source, ["window"], **{flag: True})
    for clip in ("clip.mp4", "https://example.org/talk.mp4", "file:///tmp/clip.mkv"):  # files, a web server's too, take them
        build_live_job(clip, ["window"], realtime=True, loop=True)


def test_bad_key_colour_fails_before_any_work():
    with pytest.raises(ConfigError, match="#rrggbb"):
        FileJob(SourceSpec("in.mp4"), OutputSpec("o.mp4", kind="green", key_color="chartreuse-ish")).validate()


def test_from_dict_rejects_unknown_fields_and_other_types():
    data = FileJob(SourceSpec("a.mp4"), OutputSpec("b.mov")).to_dict()
    data["output"]["colour"] = "red"
    with pytest.raises(ConfigError, match="unknown field.*colour"):
        FileJob.from_dict(data)
    with pytest.raises(ConfigError, match="not a FileJob"):
        FileJob.from_dict({**FileJob(SourceSpec("a.mp4"), OutputSpec("b.mov")).to_dict(), "type": "LiveJob"})


def test_defaults_are_the_documented_ones():
    job = FileJob(SourceSpec("a.mp4"), OutputSpec("b.mov"))
    assert job.output.kind == "alpha" and job.smoothing == SmoothingSpec("lookahead", 2)
    assert job.inference == InferenceSpec() and job.inference.resolution is None


def test_backbone_names_match_the_models_package():
    from birefvid.models import BACKBONES

    assert set(BACKBONE_NAMES) == set(BACKBONES)


@pytest.mark.parametrize("part, field, value, words", [
    # each went through validate() and ran ("yes" is truthy), or ended in a TypeError or AttributeError
    ("output", "crf", "20", "the job description's output.crf must be a whole number or null, got '20'"),
    ("output", "overwrite", "no", "output.overwrite must be true or false, got 'no'"),
    ("source", "fps", "25", "source.fps must be a number, got '25'"),
    ("inference", "batch_size", "2", "inference.batch_size must be a whole number or null"),
    (None, "queue_size", "4", "the job description's queue_size must be a whole number, got '4'"),
    (None, "output", "o.mov", "output must be an object of its fields, got 'o.mov'"),
])
def test_a_job_description_with_a_value_of_the_wrong_type_names_the_field(part, field, value, words):
    data = build_file_job("in.mp4", "out.mov").to_dict()
    (data[part] if part else data)[field] = value
    with pytest.raises(ConfigError, match=words):
        FileJob.from_dict(data)
    data = build_file_job("in.mp4", "out.mov").to_dict()
    data["source"]["fps"] = 30  # a whole number where a number goes is fine, as JSON writes it
    assert FileJob.from_dict(data).source.fps == 30


def test_a_keyword_of_the_wrong_type_is_refused_before_it_replaces_a_file(tmp_path):
    """A web form's strings passed on: overwrite="no" is truthy, and the existing output was replaced."""
    from media import make_video

    clip = make_video(tmp_path / "in.mp4", n_frames=2, with_audio=False).path
    kept = tmp_path / "out.webm"
    kept.write_bytes(b"yesterday's result")
    with pytest.raises(ConfigError, match=r"^overwrite must be True or False, got 'no'$"):
        process_video(clip, kept, overwrite="no", model="tiny", device="cpu", resolution=64)
    assert kept.read_bytes() == b"yesterday's result"


@pytest.mark.parametrize("call, words", [
    (lambda: build_file_job("in.mp4", "out.webm", crf="20"), "crf must be a whole number or None, got '20'"),  # was a bare TypeError
    (lambda: build_file_job("in.mp4", "out.webm", audio="false"), "audio must be True or False"),  # kept the sound
    (lambda: build_file_job("in.mp4", "out.webm", batch_size="2"), "batch_size must be a whole number or None"),
    (lambda: iter_masks("in.mp4", deinterlace="no"), "deinterlace must be True or False"),
    (lambda: build_live_job("in.mp4", "out.mp4", overwrite="no"), "overwrite must be True or False"),
])  # fmt: skip
def test_a_keyword_of_the_wrong_type_names_the_keyword(call, words):
    with pytest.raises(ConfigError, match=words):
        call()


def test_numpy_values_and_paths_are_taken_and_written_as_plain_json():
    """Keywords from a NumPy sweep (np.arange, a float32 slider) were refused with a misleading range message
    ("grow must be a whole number of pixels from -200 to 200, got np.int64(2)"), or passed and then failed the
    report's JSON after the whole run ("Object of type int64 is not JSON serializable")."""
    import numpy as np

    job = build_file_job("in.mp4", "out.webm", grow=np.int64(2), threshold=np.float32(0.5), blur_sigma=np.float32(3),
                         max_size=np.int32(128), smooth_window=np.int64(3), crf=np.int64(20), overwrite=np.bool_(True),
                         bit_depth=np.int64(16), fps=Fraction(30000, 1001), resolution=np.int64(512))  # fmt: skip
    data = json.loads(job.to_json())
    assert (data["output"]["matte"]["grow"], data["output"]["crf"], data["output"]["overwrite"]) == (2, 20, True)
    assert data["source"]["max_size"] == 128 and data["output"]["bit_depth"] == 16 and job.inference.resolution == (512, 512)
    assert FileJob.from_json(job.to_json()) == job
    live = build_live_job("in.mp4", "out.mp4", effect="replace", background=Path("room.png"), grow=np.int64(1))
    assert json.loads(live.to_json())["effect"]["background"] == "room.png"


def test_torch_devices_numeric_bitrates_and_rgb_triples_are_taken():
    """Values the API took before its keywords were type-checked, then refused: device=torch.device("cuda:1")
    or a GPU's number, bitrate=5_000_000 (PyAV's bit_rate) and key_color=(0, 255, 0) (parse_color's triple)."""
    import torch

    job = build_file_job("in.mp4", "out.mp4", kind="green", device=torch.device("cpu"), bitrate=5_000_000, key_color=(0, 255, 0))
    assert (job.inference.device, job.output.bitrate, job.output.key_color) == ("cpu", "5000000", "0,255,0")
    assert build_file_job("in.mp4", "out.webm", device=1).inference.device == "cuda:1"
    assert build_file_job("in.mp4", "out.webm", device=None).inference.device == "auto"  # failed once the run began
    live = build_live_job("in.mp4", Path("out.mp4"), effect="green", key_color=[0, 0, 255], device=torch.device("cpu"))
    assert (live.effect.key_color, live.inference.device, live.sinks) == ("0,0,255", "cpu", ("out.mp4",))  # one Path: a bare TypeError


def test_a_job_of_another_schema_names_it():
    data = {**FileJob(SourceSpec("a.mp4"), OutputSpec("b.mov")).to_dict(), "schema": "birefvid.job/9"}
    with pytest.raises(ConfigError, match="job schema 'birefvid.job/9' is not 'birefvid.job/1'"):
        FileJob.from_dict(data)


def test_the_readme_way_of_repeating_a_run_from_its_report():
    job = build_file_job("a.mp4", "b.webm", threshold=0.5, min_area=1.0)
    report = json.loads(json.dumps({"job": job.to_dict()}))  # as a --report file holds it
    assert FileJob.from_dict(report["job"]) == job


def test_worker_threads_name_options_the_callers_way():
    """Errors raised on the live model, sink and capture threads read as the caller typed them."""
    import threading

    from birefvid.errors import in_caller_context, option

    said: list[str] = []

    def name_it() -> None:
        said.append(option("blur_sigma", 4))

    with cli_naming():
        on_cli = threading.Thread(target=in_caller_context(name_it))
    on_api = threading.Thread(target=in_caller_context(name_it))
    for thread in (on_cli, on_api):
        thread.start()
        thread.join()
    assert said == ["--blur-sigma 4", "blur_sigma=4"]


@pytest.mark.parametrize("call, name", [
    (lambda: process_video("in.mp4", "out.webm", overwite=True), "process_video"),
    (lambda: build_file_job("in.mp4", "out.webm", overwite=True), "build_file_job"),
    (lambda: build_live_job(0, "window", overwite=True), "build_live_job"),
])  # fmt: skip
def test_a_mistyped_keyword_names_the_function_called_and_the_likely_one(call, name):
    with pytest.raises(TypeError, match=rf"^{name}\(\) got an unexpected keyword argument 'overwite'; did you mean 'overwrite'\?$"):
        call()


def test_rvms_kind_names_are_taken_by_a_job_file_and_an_outputspec_too():
    """fgr and pha (RVM's names) worked on the command line, in --also and in build_file_job's kind=, but a job file
    holding them, or an OutputSpec in also=, said "unknown kind 'fgr'" of a kind the docs name."""
    data = build_file_job("in.mp4", "fgr.mp4", kind="foreground", also=["mask=pha.mkv"]).to_dict()
    data["output"]["kind"], data["also"][0]["kind"] = "fgr", "pha"
    job = FileJob.from_json(json.dumps(data)).validate()
    assert (job.output.kind, job.also[0].kind) == ("foreground", "mask")
    job = build_file_job("in.mp4", "fgr.mp4", kind="fgr", also=[OutputSpec("pha.mkv", kind="pha")])
    assert job.also[0].kind == "mask" and job == FileJob.from_json(job.to_json())
    with pytest.raises(ConfigError, match="unknown kind 'fg'"):
        OutputSpec("x.mp4", kind="fg").validate()


@pytest.mark.parametrize("text", ['{"schema": "birefvid.job/1", "type": "FileJob", "source": {', "[1, 2]", "null"], ids=["cut-off", "list", "null"])
def test_a_job_file_that_is_no_json_object_is_a_config_error(text):
    """A job file cut off or edited into another shape raised json's JSONDecodeError, or a TypeError for a list, from
    FileJob.from_json, not the ConfigError every other wrong job description raises."""
    with pytest.raises(ConfigError, match=r"^the job description (is not valid JSON: |must be a JSON object of its fields, got )"):
        FileJob.from_json(text)


def _input_in_empty_workdir(command: str, tmp_path: Path, monkeypatch) -> tuple[str, Path]:
    """An input for ``command`` (a picture for image, the sample clip otherwise) and an empty working folder, made
    current: what a refused run leaves in it is checked."""
    import cv2
    import numpy as np

    if command == "image":
        source = str(tmp_path / "in.png")
        cv2.imwrite(source, np.full((48, 64, 3), 128, np.uint8))
    else:
        source = str(Path(__file__).resolve().parent.parent / "samples" / "scene.mp4")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return source, work


def test_a_bad_key_colour_names_its_option():
    """"not a colour: 'nope'" alone left a run given a key, an overlay colour and a background to guess which was
    wrong; --overlay-color's error named its option already."""
    from birefvid.api import build_live_job

    with cli_naming(), pytest.raises(ConfigError, match=r"^--key-color: not a colour: 'nope'"):
        process_cmd.job_from_args(_parse("talk.mp4", "-o", "talk.mp4", "--output", "green", "--key-color", "nope"))
    with cli_naming(), pytest.raises(ConfigError, match=r"^--key-color: not a colour: 'nope'"):
        build_live_job("cam.mp4", ["out.mkv"], effect="blur", key_color="nope")  # a key away in a blur run
    with pytest.raises(ConfigError, match=r"^key_color: not a colour: 'nope'"):
        build_file_job("in.mp4", "out.mp4", kind="green", key_color="nope")
