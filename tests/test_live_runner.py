"""The live runner: the display keeps the source's rate whatever the model costs, pictures are
masked from the first one on, smoothing restarts on a new connection, errors end the run cleanly.

The scene is the process tests' red square on blue (``process_fixtures``), played in real time
from a file; the "red-key" model knows the exact answer, and a sleep inside it stands in for a
model far slower than the camera.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from birefvid.api import build_live_job, live_hint, run_live
from birefvid.errors import ConfigError, PipelineError
from birefvid.io.live_base import LiveSink
from birefvid.runtime.live import BUDGET_FLOOR, SIZE_LADDER, OutputClock, choose_resolution
from process_fixtures import RedKey, red_key_segmenter, scene_frame, true_mask, interior
from media import make_resizing_video

SIZE = (96, 64)
FPS = 24


class SlowRedKey(RedKey):
    """RedKey that takes ``seconds`` per call (sleeping, so it holds no CPU and no GIL), or only on
    its first call with ``first_only`` (as a first ONNX export or compile does), or on every call but
    the first with ``after_first`` (a warm-up that costs the test nothing, then a slow model). With ``release``
    the slow call waits on that event instead, for at most ``seconds``: a warm-up that lasts until the test ends,
    so a bound on how soon the run ends sits far from what a run waiting for it gives, whatever the machine's load."""

    def __init__(self, seconds: float, first_only: bool = False, after_first: bool = False,
                 release: "threading.Event | None" = None) -> None:  # fmt: skip
        super().__init__()
        self.seconds = seconds
        self.first_only = first_only
        self.after_first = after_first
        self.release = release
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        slow = self.calls == 1 if self.first_only else not (self.after_first and self.calls == 1)
        if slow and self.release is not None:
            self.release.wait(self.seconds)
        elif slow:
            time.sleep(self.seconds)
        return super().forward(x)


def write_scene(path, n_frames: int, size=SIZE, fps=FPS):
    """An FFV1 clip of the moving red square (lossless, so colours are exact)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv444p"
        for i in range(n_frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(scene_frame(i, size), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def read_frames(path):
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return [(f.to_ndarray(format="rgb24"), float(f.pts * stream.time_base)) for f in c.decode(stream)]


def test_slow_model_keeps_the_source_rate_and_latency_bounded_over_6_s(tmp_path):
    """A model 12x slower than the camera: output fps stays at the source rate, no backlog grows (a backlog
    would add 0.9 s of latency a second, plain within the first of the four stats periods).

    The bounds sit between what a bug gives and what a loaded box gives. A display tied to the model
    shows 2 fps and a backlog's latency passes 1.3 s in the first 1.5 s period and 2.7 s in the second; a 2-core
    box loaded 8 times over slowed the source itself to 21.6 fps and showed 19.4 (13.6 in its worst period, 388 ms
    p95 latency), so the source is compared side by side and the rest has room. 6 s, not the 15 it once ran: four
    periods show the rate held and the latency flat as well as six did, for 9 s less of CI."""
    clip = write_scene(tmp_path / "cam.mkv", 6 * FPS)
    model = SlowRedKey(0.5)
    job = build_live_job(str(clip), [str(tmp_path / "out.mkv")], effect="mask", realtime=True, duration=6,
                         stats_every=1.5, carry=False, smooth="none")  # fmt: skip
    stats = tmp_path / "stats.jsonl"
    report = run_live(job, segmenter=red_key_segmenter(model), stats_json=stats)
    final = report["stats"]
    assert final["model_fps"] <= 2.2  # the model really was slow
    assert FPS / 2 <= final["source_fps"] <= 1.05 * FPS  # paced: a file read unpaced runs far faster
    assert final["output_fps"] >= 0.75 * final["source_fps"] and final["output_fps"] >= FPS / 2, final
    assert final["latency_ms_p95"] <= 500, final  # a backlog's p95 over 6 s is seconds
    periods = [json.loads(line) for line in stats.read_text().splitlines()]
    assert periods[-1]["final"] and len(periods) >= 4
    for period in periods[:-1]:  # every 1.5 s: at least 4 times the model's rate, and no backlog building
        assert period["output_fps"] >= FPS / 3 and period["latency_ms_p95"] <= 1000, periods
    recorded = read_frames(tmp_path / "out.mkv")
    assert abs(len(recorded) - report["frames_shown"]) <= 2 and len(recorded) >= 6 * FPS / 2, (len(recorded), report["frames_shown"])


class CountingRedKey(RedKey):
    """RedKey that counts its calls and the CPU time they take (a few ms of real work each, as a model's)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        end = time.thread_time() + 0.005  # busy, not asleep: a model holds the CPU
        while time.thread_time() < end:
            pass
        return super().forward(x)


def test_model_fps_caps_the_mask_refreshes_and_keeps_the_picture_at_the_source_rate(tmp_path):
    """--model-fps 4 (a laptop on battery): the model refreshes the mask at most 4 times a second where it
    kept up with all 24 frames, every frame is still shown and masked, and the stats say the cap."""
    clip = write_scene(tmp_path / "cam.mkv", 3 * FPS)
    runs = {}
    for cap in (None, 4.0):
        model, lines = CountingRedKey(), []
        job = build_live_job(str(clip), [str(tmp_path / f"out{cap}.mkv")], effect="mask", realtime=True, stats_every=1.0,
                             carry=False, smooth="none", model_fps=cap, resolution=64)  # fmt: skip
        report = run_live(job, segmenter=red_key_segmenter(model), printer=lines.append)
        runs[cap] = (model.calls, report, lines)
    free_calls, free, _ = runs[None]
    capped_calls, capped, lines = runs[4.0]
    seconds = capped["stats"]["seconds"]
    # The control: without the cap the model ran more often than the cap allows. An idle box runs it on
    # nearly every frame; a 2-core box loaded 4-5 times over ran it on 18-39 of 72 (5-13 a second), still over the cap.
    assert free_calls > 1 + 4 * free["stats"]["seconds"] + 1, (free_calls, free["stats"]["seconds"])
    assert capped_calls <= 1 + 4 * seconds + 1, (capped_calls, seconds)  # the first frame before the display, then 4 a second
    assert capped_calls >= 4 * seconds * 0.6  # the cap is a ceiling, not a stall
    assert capped["stats"]["model_fps"] <= 4.4 and capped["stats"]["model_fps_cap"] == 4.0 and free["stats"]["model_fps_cap"] is None
    # Every frame still shown: the picture keeps the source's rate, not the model's 4 a second (about 12 of
    # 72 frames). Compared side by side with the uncapped run, since a loaded 2-core box drops frames in
    # either run, by turns (shown 62 vs 70 of 72, 60 vs 64; 20.5 vs 22.6 fps); the two runs are one after the
    # other, and the load changes between them (17.6 vs 22.6 fps, 57 vs 66 shown, with two busy loops beside, the
    # capped run's source itself slowed to 21.9 fps): 0.6 of it is still far above the 1/6 a display tied to the cap shows.
    capped_fps, free_fps = capped["stats"]["output_fps"], free["stats"]["output_fps"]
    assert capped_fps >= 0.6 * min(FPS, free_fps) and capped_fps > 3 * 4, (capped_fps, free_fps)
    assert capped["frames_shown"] >= 0.6 * free["frames_shown"], (capped["frames_shown"], free["frames_shown"])
    assert len(read_frames(tmp_path / "out4.0.mkv")) == capped["frames_shown"]
    assert any("model" in line and "fps (at most 4)" in line for line in lines), lines
    assert capped["job"]["model_fps"] == 4.0
    with pytest.raises(ConfigError, match="model_fps"):
        build_live_job(str(clip), ["window"], model_fps=0)


def test_every_picture_is_masked_and_the_effect_is_exact(tmp_path):
    """From the first picture on, the background is the key colour and the subject the source."""
    clip = write_scene(tmp_path / "cam.mkv", 2 * FPS)
    job = build_live_job(str(clip), [str(tmp_path / "out.mkv")], effect="green", key_color="#00ff00",
                         realtime=True, smooth="none")  # fmt: skip
    report = run_live(job, segmenter=red_key_segmenter(SlowRedKey(0.02)))
    assert report["ended_by"] == "source ended"
    frames = read_frames(tmp_path / "out.mkv")
    assert len(frames) >= 0.8 * 2 * FPS
    image, _ = frames[0]
    fg, bg = interior(true_mask(0, SIZE), margin=6)  # the first picture shows frame 0, masked
    assert np.abs(image[bg].astype(int) - (0, 255, 0)).max() <= 8  # H.264 in the recording: a few levels
    assert np.abs(image[fg].astype(int) - (255, 0, 0)).max() <= 8
    times = [t for _, t in frames]
    assert all(b > a for a, b in zip(times, times[1:]))


def test_an_overlay_run_shows_the_picture_with_the_subject_tinted(tmp_path):
    """--effect overlay: the camera's picture as it is outside the subject, tinted over it, from the first picture on;
    o switches to it from another effect (the key's and the page's names)."""
    from birefvid.job import EffectSpec
    from birefvid.runtime.live_effects import KEYS, EffectSwitch

    clip = write_scene(tmp_path / "cam.mkv", FPS)
    job = build_live_job(str(clip), [str(tmp_path / "out.mkv")], effect="overlay", overlay_color="yellow", realtime=True, smooth="none")
    report = run_live(job, segmenter=red_key_segmenter(SlowRedKey(0.02)))
    assert report["ended_by"] == "source ended"
    image, _ = read_frames(tmp_path / "out.mkv")[0]
    fg, bg = interior(true_mask(0, SIZE), margin=6)
    # the recording is H.264 4:2:0 at the recorder's quality: the bright line's colour rings into its neighbours (15
    # levels seen 6 px away); still far from an untinted subject (red: 128 away) or a tinted background
    assert np.abs(image[bg].astype(int) - (0, 0, 255)).max() <= 24  # the blue background untouched
    assert np.abs(image[fg].astype(int) - (255, 128, 0)).max() <= 24  # red half under yellow
    switch = EffectSwitch(EffectSpec("blur", overlay_color="cyan", overlay_opacity=0.25))
    assert "overlay" in switch.available and switch.select(KEYS["o"], by="window") == "overlay"
    assert switch.compositor is not None and (switch.compositor.overlay_color, switch.compositor.overlay_opacity) == ((0, 255, 255), 0.25)


def textured_scene(index: int, size=(320, 96), side: int = 48, speed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """A red-ish textured square sliding right over a blue-ish textured background (flow needs texture)."""
    w, h = size
    rng = np.random.default_rng(0)
    background = np.stack([rng.integers(0, 60, (h, w + 400)), rng.integers(0, 256, (h, w + 400)), rng.integers(150, 256, (h, w + 400))], -1)
    subject = np.stack([rng.integers(190, 256, (side, side)), rng.integers(0, 256, (side, side)), rng.integers(0, 60, (side, side))], -1)
    image = background[:, :w].astype(np.uint8).copy()
    mask = np.zeros((h, w), np.uint8)
    left, top = 8 + speed * index, (h - side) // 2
    image[top : top + side, left : left + side] = subject
    mask[top : top + side, left : left + side] = 255
    return image, mask


def test_mask_is_carried_to_the_current_frame(tmp_path):
    """With a slow model the mask is frames old; carried along optical flow it follows the subject.
    Two 2 s runs (3 s each once): the 1.5 s scored after the first half second hold ten model runs each."""
    clip = tmp_path / "cam.mkv"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("ffv1", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 320, 96, "yuv444p"
        for i in range(2 * FPS):
            for packet in stream.encode(av.VideoFrame.from_ndarray(textured_scene(i)[0], format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    iou = {}
    for carry in (False, True):
        out = tmp_path / f"carry{carry}.mkv"
        job = build_live_job(str(clip), [str(out)], effect="mask", realtime=True, carry=carry, smooth="none")
        report = run_live(job, segmenter=red_key_segmenter(SlowRedKey(0.15)))
        assert report["stats"]["mask_age_ms_median"] >= 100  # the masks really were several frames old
        scores = []
        for image, t in read_frames(out)[FPS // 2 :]:
            truth = textured_scene(round(t * FPS))[1] > 127
            shown = image[..., 0] > 127
            scores.append((shown & truth).sum() / (shown | truth).sum())
        iou[carry] = float(np.mean(scores))
    assert iou[True] >= 0.85 and iou[True] > iou[False] + 0.1, iou


def test_reconnect_resets_smoothing():
    """A frame of a new connection (higher generation) starts the smoother afresh."""
    from birefvid.frames import Frame
    from birefvid.io.live_base import CapturedFrame
    from birefvid.runtime.live import ModelPath, LiveStats
    from birefvid.temporal import make_smoother

    path = ModelPath(red_key_segmenter(), make_smoother("ema", weight=0.9, motion_threshold=None), None, LiveStats(), threading.Event())
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((64, 64, 3), np.uint8)
    blue[..., 2] = 255
    from fractions import Fraction

    def captured(image, generation):
        return CapturedFrame(Frame(image, 0, Fraction(1, 24), 0), time.monotonic(), generation, 0.0)

    path.segment(captured(red, 0))
    assert path.latest.alpha.mean() > 0.99
    same = path.segment(captured(blue, 0))  # same connection: the EMA keeps 90% of the red history
    assert same.alpha.mean() > 0.8
    fresh = path.segment(captured(blue, 1))  # after a reconnect: no history
    assert fresh.alpha.mean() < 0.01


def test_output_clock_never_goes_back():
    clock = OutputClock(fps=25)
    assert clock.for_frame(1.00, now=10.0) == 1.00
    assert clock.for_frame(1.04, now=10.04) == pytest.approx(1.04)
    held = [clock.for_repeat(now=10.04 + 0.04 * k) for k in range(1, 4)]  # source reconnecting
    assert held == sorted(held) and held[0] > 1.04
    after = clock.for_frame(0.0, now=10.3)  # the new connection's clock restarted at 0
    assert after > held[-1]
    assert clock.for_frame(0.04, now=10.34) == pytest.approx(after + 0.04)


def test_latency_budget_picks_the_largest_size_that_fits(caplog):
    """A model whose time grows with the pixel count: the budget picks the size just under it."""

    class PixelCost(RedKey):
        def forward(self, x):
            time.sleep(x.shape[-1] * x.shape[-2] / 128 / 128 * 0.1)  # 100 ms at 128², 225 ms at 192², 306 ms at 224²
            return super().forward(x)

    seg = red_key_segmenter(PixelCost())
    image = scene_frame(0, (320, 240))
    with caplog.at_level(logging.INFO, logger="birefvid.runtime.live"):
        chosen = choose_resolution(seg, image, 0.27, ceiling=1024)
    assert seg.resolution == chosen
    # The pick is checked against the times the calibration measured (its log lines), not against
    # fixed sizes: on an idle box 160 or 192 fits, but on a loaded 2-core CI box the preprocessing
    # around the sleep took 100-170 ms more (64² timed 104 ms, 128² 264 ms) and 96 or 128 fit.
    timed = [(int(m[1]), int(m[2])) for m in re.finditer(r"latency budget: (\d+)x\d+ takes (\d+) ms", caplog.text)]
    sides = [side for side, _ in timed]
    floor_at = SIZE_LADDER.index(BUDGET_FLOOR)
    assert sides == list(SIZE_LADDER[floor_at : floor_at + len(sides)]), timed  # smallest first from the floor, none skipped
    assert all(ms >= side * side / 128 / 128 * 100 - 1 for side, ms in timed), timed  # each timed at its size: never under its sleep
    assert all(ms <= 270 for _, ms in timed[:-1]) and timed[-1][1] >= 270, timed  # the search stops at the first over budget
    assert chosen == ((timed[-2][0],) * 2 if len(timed) > 1 else (BUDGET_FLOOR,) * 2), timed  # the largest that fit (the floor when none did)
    assert chosen[0] <= 192  # 224² sleeps 306 ms alone: never picked, however idle the box
    assert choose_resolution(seg, image, 0.001, ceiling=1024) == (BUDGET_FLOOR, BUDGET_FLOOR)  # nothing fits: the floor


def test_live_help_says_the_budget_picks_the_size(capsys):
    """`live --help` said --resolution defaults to the model's native size; live picks it by --latency-budget."""
    from birefvid.cli import main

    with pytest.raises(SystemExit):
        main(["live", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    start = text.index("--resolution RESOLUTION inference")
    assert "fits --latency-budget" in text[start:text.index("--keep-aspect", start)]


def test_live_help_names_the_budgets_floor(capsys):
    """`live --help` said --latency-budget picks "the largest size that fits", so a user with a slow machine expected
    64² and got 128² with a warning: the help names the floor the budget never goes under."""
    from birefvid.cli import main

    with pytest.raises(SystemExit):
        main(["live", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    start = text.index("--latency-budget MS pick")
    assert f"never under {BUDGET_FLOOR}x{BUDGET_FLOOR}" in text[start:text.index("--smooth {", start)]


def test_latency_budget_leaves_a_shared_segmenter_at_its_own_size(tmp_path):
    """An app reusing one Segmenter: a live run's budget picks its own size, and the Segmenter keeps
    the caller's 256 for the next run (the budget's ceiling) and for process_video (its quality)."""

    class PixelCost(RedKey):
        def forward(self, x):
            time.sleep(x.shape[-1] * x.shape[-2] / 128 / 128 * 0.02)  # 20 ms at 128², 80 ms at 256²
            return super().forward(x)

    from birefvid.runtime import Segmenter

    seg = Segmenter(module=PixelCost(), resolution=256, device="cpu", precision="fp32", backend="torch")
    clip = write_scene(tmp_path / "cam.mkv", FPS // 2)
    tight = run_live(build_live_job(str(clip), [str(tmp_path / "a.mkv")], effect="mask", latency_budget_ms=5), segmenter=seg)
    assert tight["resolved"]["resolution"] == [BUDGET_FLOOR, BUDGET_FLOOR]  # nothing fits: the floor
    assert seg.resolution == (256, 256)
    roomy = run_live(build_live_job(str(clip), [str(tmp_path / "b.mkv")], effect="mask", latency_budget_ms=1000), segmenter=seg)
    assert roomy["resolved"]["resolution"] == [256, 256]  # the ceiling is the Segmenter's own size, not the last run's


def test_a_stop_during_the_latency_budgets_calibration_ends_the_run_promptly(tmp_path, monkeypatch):
    """An app's stop button pressed while the budget times sizes (seconds for a slow model) ends the run
    within about one size's timing, not after the whole calibration."""
    from birefvid import exiting

    monkeypatch.setattr(exiting, "_abandoned", [])  # the calibration is left timing its sizes, as for Ctrl-C

    class PixelCost(RedKey):
        def forward(self, x):
            # 0.4 s at 128² (the budget's floor, timed three times whatever the stop), 1.6 s at 256²: 14 s to time all
            time.sleep(x.shape[-1] * x.shape[-2] / 64 / 64 * 0.1)
            return super().forward(x)

    from birefvid.runtime import Segmenter

    seg = Segmenter(module=PixelCost(), resolution=256, device="cpu", precision="fp32", backend="torch")
    clip = write_scene(tmp_path / "cam.mkv", FPS)
    stop = threading.Event()
    job = build_live_job(str(clip), [str(tmp_path / "rec.mkv")], effect="mask", realtime=True, latency_budget_ms=5000)
    started = time.monotonic()
    report = run_live(job, segmenter=seg, stop=stop, on_effects=lambda switch: threading.Timer(0.3, stop.set).start())
    assert time.monotonic() - started < 6.0  # the floor's 1.2 s and a loaded machine's start, far from the 14 s of all
    assert report["ended_by"] == "stop" and report["resolved"]["resolution"][0] < 256


def test_model_error_ends_the_run_with_one_clear_error_and_no_recording(tmp_path):
    from process_fixtures import FailingRedKey

    clip = write_scene(tmp_path / "cam.mkv", 3 * FPS)
    out = tmp_path / "out.mkv"
    for fail_at in (1, 3):  # on the first frame (main thread), then on the model thread
        job = build_live_job(str(clip), [str(out)], effect="mask", realtime=True, resolution=64)
        with pytest.raises(PipelineError, match="model exploded"):
            run_live(job, segmenter=red_key_segmenter(FailingRedKey(fail_at=fail_at)))
        assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_stop_event_ends_the_run_and_commits_the_recording(tmp_path):
    clip = write_scene(tmp_path / "cam.mkv", 10 * FPS)
    out = tmp_path / "out.mkv"
    stop = threading.Event()

    def stop_after_1_5_s_shown(switch) -> None:
        # counted from the first picture, not the call: a loaded machine's start and warm-up took most of a 1.5 s timer
        threading.Thread(target=lambda: (switch.showing.wait(60), time.sleep(1.5), stop.set()), daemon=True).start()

    job = build_live_job(str(clip), [str(out)], effect="mask", realtime=True)
    report = run_live(job, segmenter=red_key_segmenter(), stop=stop, on_effects=stop_after_1_5_s_shown)
    assert report["ended_by"] == "stop" and out.exists()
    assert 0.5 * 1.5 * FPS <= len(read_frames(out)) <= 2 * FPS  # about 1.5 s of a 10 s clip: the stop ended it


@pytest.mark.parametrize("hooks, words", [
    (dict(stop=True), r"run_live\(\) stop must be a threading.Event"),  # an AttributeError once the source was open
    (dict(segmenter="tiny"), "pass model='tiny'"),  # a PipelineError after the recording had begun
    (dict(on_effects=1), r"run_live\(\) on_effects must be a function"),
])  # fmt: skip
def test_run_live_refuses_hooks_of_the_wrong_kind_before_the_run(tmp_path, hooks, words):
    """As process_video does: one TypeError naming the keyword, with nothing opened or written."""
    clip = write_scene(tmp_path / "cam.mkv", 2)
    job = build_live_job(str(clip), [str(tmp_path / "out.mkv")], effect="mask", resolution=64)
    with pytest.raises(TypeError, match=words):
        run_live(job, **hooks)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.mkv"]


@pytest.mark.parametrize(
    "options, words",
    [
        (dict(effect="replace"), "effect='replace' needs background"),
        (dict(effect="mask", background="red"), "background is not used with effect='mask', which keeps its effect"),
        (dict(smooth="lookahead"), "unknown smooth 'lookahead'; expected one of none, ema, flow"),
        (dict(resolution=256, latency_budget_ms=100), "use either resolution or latency_budget_ms"),
        (dict(duration=0), "duration must be positive"),
    ],
)
def test_live_job_validation(options, words):
    with pytest.raises(ConfigError, match=words):
        build_live_job("cam.mp4", "out.mp4", **options)
    with pytest.raises(ConfigError, match="at least one sink"):
        build_live_job("cam.mp4", [])


def test_live_job_round_trips_through_json():
    from birefvid.job import LiveJob

    job = build_live_job("rtsp://cam/1", ["http://127.0.0.1:8080", "rec.mkv"], effect="replace", background="beach.jpg",
                         latency_budget_ms=150, max_retries=3, duration=60)  # fmt: skip
    assert LiveJob.from_json(job.to_json()) == job


def test_record_preset_reaches_the_recording(tmp_path):
    clip = write_scene(tmp_path / "cam.mkv", FPS)
    out = tmp_path / "out.mp4"
    run_live(build_live_job(str(clip), [str(out)], effect="blur", record_preset="ultrafast"), segmenter=red_key_segmenter())
    with av.open(str(out)) as c:
        first = bytes(next(p for p in c.demux(c.streams.video[0]) if p.size))
    assert b"subme=0" in first and b"cabac=0" in first  # x264's settings line: ultrafast, not the live default veryfast


def test_a_recording_keeps_the_sources_pixel_shape(tmp_path):
    """A D1 camera's 704x576 is 4:3 only with its 12:11 pixels (analog DVRs and encoders send it so):
    live recordings were written with square pixels, so every player showed the scene squeezed."""
    clip = tmp_path / "d1.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        stream.codec_context.sample_aspect_ratio = Fraction(12, 11)
        for i in range(FPS):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(scene_frame(i, SIZE), format="rgb24")))
        out.mux(stream.encode(None))
    outputs = [tmp_path / "out.mp4", tmp_path / "out.mkv"]
    run_live(build_live_job(str(clip), [str(o) for o in outputs], effect="blur"), segmenter=red_key_segmenter())
    for recorded in outputs:
        with av.open(str(recorded)) as c:
            assert c.streams.video[0].sample_aspect_ratio == Fraction(12, 11), recorded


class _SlowSink(LiveSink):
    """A sink that takes ``seconds`` per picture, as an encoder too slow for the camera does (sleeping: no CPU held)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds, self.pictures = seconds, 0

    @property
    def name(self) -> str:
        return "slow"

    def _send(self, picture, t) -> None:
        time.sleep(self.seconds)
        self.pictures += 1

    def _close(self) -> None:
        pass


@pytest.mark.parametrize("seconds", [0.0, 2.0 / FPS])
def test_a_run_that_drops_frames_with_a_recording_earns_a_hint(tmp_path, monkeypatch, seconds):
    """An output at half the camera's rate makes the display drop camera frames, and the run ends with advice."""
    import birefvid.io.live_sinks as live_sinks
    from birefvid.api import DROPPED_SHARE_HINT, live_hint
    from birefvid.errors import cli_naming

    sink = _SlowSink(seconds)
    monkeypatch.setattr(live_sinks, "open_live_sinks", lambda specs, **kw: [sink])
    clip = write_scene(tmp_path / "cam.mkv", 2 * FPS)
    report = run_live(build_live_job(str(clip), [str(tmp_path / "rec.mp4")], effect="mask", realtime=True), segmenter=red_key_segmenter())
    s = report["stats"]
    with cli_naming():
        hint = live_hint(report)
    if seconds:
        assert s["dropped"] > 0.25 * 2 * FPS
        assert hint is not None and "--preset superfast" in hint and f"{s['dropped']} camera frames" in hint
    else:
        # A sink that keeps up: drops come only from this machine's load (3 of 48 on a busy CI box, more than 7 once
        # on a box loaded several times over), below the slow sink's 12+ (24 idle); the hint follows its 5% rule either way.
        assert s["dropped"] < 0.25 * 2 * FPS
        assert (hint is None) == (s["dropped"] < DROPPED_SHARE_HINT * (s["dropped"] + s["frames_shown"]))
    assert sink.pictures == s["frames_shown"]


def test_a_call_that_drops_frames_earns_a_hint_too(tmp_path, monkeypatch):
    """A run with no recording (a virtual camera, a window, the preview) whose output is too slow for the
    camera drops frames, and its end says what costs less, where it said nothing."""
    import birefvid.io.live_sinks as live_sinks
    from birefvid.api import live_hint
    from birefvid.errors import cli_naming

    sink = _SlowSink(2.0 / FPS)
    monkeypatch.setattr(live_sinks, "open_live_sinks", lambda specs, **kw: [sink])
    clip = write_scene(tmp_path / "cam.mkv", 2 * FPS)
    report = run_live(build_live_job(str(clip), ["http://127.0.0.1:9"], effect="blur", realtime=True), segmenter=red_key_segmenter())
    s = report["stats"]
    assert s["dropped"] > 0.25 * 2 * FPS
    with cli_naming():
        hint = live_hint(report)
    assert hint is not None and f"{s['dropped']} camera frames" in hint and "--no-carry" in hint and "--preset" not in hint


def test_live_hint_needs_dropped_frames_and_names_what_costs_less():
    from birefvid.api import live_hint

    def report(dropped, shown=100, sinks=("rec.mp4",), preset=None, carry=True, source="cam.mp4", size=(640, 480)):
        job = {"record_preset": preset, "carry": carry, "effect": {"foreground": False}}
        return {"stats": {"dropped": dropped, "frames_shown": shown}, "sinks": list(sinks), "job": job, "source": source,
                "width": size[0], "height": size[1]}

    assert "30 camera frames (23%) were dropped" in live_hint(report(30)) and "record_preset='superfast'" in live_hint(report(30))
    assert live_hint(report(4)) is None  # under 5 %: a hiccup
    assert live_hint(report(0, shown=0)) is None
    assert "record_preset" not in live_hint(report(30, preset="ultrafast"))


def test_live_hint_for_a_call_that_drops_frames():
    """A virtual camera or window on a weak laptop dropping 12-27% of a 720p camera's frames ended with no advice
    (the hint was for recordings only), where --no-carry and a 640x480 camera picture kept the rate."""
    from birefvid.api import live_hint
    from birefvid.errors import cli_naming

    def report(carry=True, source="0", size=(1280, 720), foreground=False):
        job = {"record_preset": None, "carry": carry, "effect": {"foreground": foreground}}
        return {"stats": {"dropped": 74, "frames_shown": 526}, "sinks": ["virtualcam", "window"], "job": job, "source": source,
                "width": size[0], "height": size[1]}

    with cli_naming():
        hint = live_hint(report())
        assert hint.startswith("74 camera frames (12%) were dropped: this CPU could not keep up")
        assert "--no-carry" in hint and "--camera-size 640x480" in hint and "--preset" not in hint
        assert "--no-carry" not in live_hint(report(carry=False)) and "--camera-size" in live_hint(report(carry=False))
        assert "--camera-size" not in live_hint(report(size=(640, 480)))  # already small
        assert "--camera-size" not in live_hint(report(source="talk.mp4"))  # a file or stream takes no camera size
        assert "--foreground" in live_hint(report(foreground=True))
        assert "closing other busy programs" in live_hint(report(carry=False, size=(640, 480)))


def test_the_summary_line_names_the_recordings():
    """`live --sink talk.mp4` ended with figures and "ended: source ended" but never said what it wrote, or where."""
    from birefvid.api import live_summary

    stats = {"seconds": 2.0, "output_fps": 24.0, "source_fps": 24.0, "model_fps": 8.0, "latency_ms_median": 9, "latency_ms_p95": 20}
    report = {"stats": stats, "frames_shown": 48, "ended_by": "source ended", "recorded": {"talk.mp4": ["talk.mp4"]}}
    assert live_summary(report).endswith("ended: source ended; recorded talk.mp4")
    report["recorded"] = {"gate.mkv": ["gate-1.mkv", "gate-2.mkv", "gate-3.mkv"], "window": []}
    assert live_summary(report).endswith("; recorded 3 files (gate-1.mkv to gate-3.mkv)")
    report["recorded"] = {}
    assert live_summary(report).endswith("ended: source ended")


def test_the_summary_line_names_each_recording_of_several_sinks():
    """`--sink rec.mp4 --sink rec.webm` ended "recorded 2 files (rec.mp4 to rec.webm)", a range of files between them
    that do not exist; each sink's recording is now named, a segmented one's parts as their range."""
    from birefvid.api import live_summary

    stats = {"seconds": 2.0, "output_fps": 24.0, "source_fps": 24.0, "model_fps": 8.0, "latency_ms_median": 9, "latency_ms_p95": 20}
    report = {"stats": stats, "frames_shown": 48, "ended_by": "source ended",
              "recorded": {"rec.mp4": ["rec.mp4"], "window": [], "rec.webm": ["rec.webm"]}}
    assert live_summary(report).endswith("; recorded rec.mp4 and rec.webm")
    report["recorded"] = {"gate.mkv": ["gate-1.mkv", "gate-2.mkv", "gate-3.mkv"], "a.webm": ["a.webm"], "b.mp4": ["b.mp4"]}
    assert live_summary(report).endswith("; recorded 3 files (gate-1.mkv to gate-3.mkv), a.webm and b.mp4")


def test_the_report_names_every_recording_kept(tmp_path):
    """An app reads which files a run wrote from its report: a recording in one file is listed too,
    not only a recording in parts, and a preview, which keeps nothing, is not."""
    from live_media import free_port

    clip = write_scene(tmp_path / "cam.mkv", FPS // 2)
    rec, preview = str(tmp_path / "rec.mkv"), f"http://127.0.0.1:{free_port()}"
    report = run_live(build_live_job(str(clip), [rec, preview], effect="mask"), segmenter=red_key_segmenter())
    assert report["recorded"] == {rec: [rec]}
    assert len(read_frames(rec)) == report["frames_shown"]


def test_a_recording_that_cannot_be_kept_still_frees_the_previews_port(tmp_path):
    """The recording's folder vanishes mid-run, so it cannot be committed: the run fails with that
    error, and the preview beside it is closed all the same, so an app's next run can use its port."""
    import shutil

    from birefvid.errors import SinkError
    from live_media import free_port

    clip = write_scene(tmp_path / "cam.mkv", 2 * FPS)
    folder = tmp_path / "gone"
    folder.mkdir()
    preview = f"http://127.0.0.1:{free_port()}"

    def remove_folder_once_showing(switch) -> None:
        threading.Thread(target=lambda: switch.showing.wait(30) and shutil.rmtree(folder)).start()

    job = build_live_job(str(clip), [preview, str(folder / "rec.mkv")], effect="mask", realtime=True, duration=1.0)
    with pytest.raises(SinkError, match="cannot move the finished output"):
        run_live(job, segmenter=red_key_segmenter(), on_effects=remove_folder_once_showing)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("preview-")]
    again = run_live(build_live_job(str(clip), [preview], effect="mask", duration=0.2), segmenter=red_key_segmenter())
    assert again["frames_shown"] > 0


def test_an_app_waiting_for_the_first_picture_is_woken_when_the_run_fails_first(tmp_path):
    """The README's pattern, ``switch.showing.wait()`` then ``select``, on an app's thread: a model that fails
    on the first frame ends the run before any picture, and the waiting thread must not hang for ever."""
    from process_fixtures import FailingRedKey

    clip = write_scene(tmp_path / "cam.mkv", FPS)
    switches, woke = [], []

    def controller(switch) -> None:
        switches.append(switch)
        threading.Thread(target=lambda: woke.append(switch.showing.wait(5))).start()

    job = build_live_job(str(clip), [str(tmp_path / "out.mkv")], effect="blur", resolution=64)
    with pytest.raises(PipelineError, match="model exploded"):
        run_live(job, segmenter=red_key_segmenter(FailingRedKey(fail_at=1)), on_effects=controller)
    deadline = time.monotonic() + 2
    while not woke and time.monotonic() < deadline:
        time.sleep(0.01)
    assert woke == [True] and switches[0].ended.is_set()


def test_a_recording_in_parts_holds_every_frame_shown(tmp_path):
    """``record_segment``: a run of 3 s in parts of 1 s; the report names the parts, which hold every frame shown."""
    clip = write_scene(tmp_path / "cam.mkv", 3 * FPS)
    job = build_live_job(str(clip), [str(tmp_path / "rec.mkv")], effect="mask", realtime=True, record_segment=1.0)
    report = run_live(job, segmenter=red_key_segmenter())
    parts = report["recorded"][str(tmp_path / "rec.mkv")]
    assert len(parts) >= 3 and sorted(parts) == parts and not (tmp_path / "rec.mkv").exists()
    counts = []
    for part in parts:
        with av.open(part) as c:
            counts.append(sum(1 for _ in c.decode(video=0)))
    assert sum(counts) == report["frames_shown"] and max(counts) <= FPS + 1


def test_stop_during_the_warm_up_ends_the_run_at_once(tmp_path, monkeypatch):
    """q in the terminal (``stop``) during a first export of 20-40 s ended the run only after it, with one
    picture recorded; as closing the window does, it ends the run at once, with no recording."""
    from birefvid import exiting

    monkeypatch.setattr(exiting, "_abandoned", [])  # the warm-up thread is left sleeping, as for Ctrl-C
    clip = write_scene(tmp_path / "cam.mkv", 48)
    rec = tmp_path / "rec.mp4"
    job = build_live_job(str(clip), [str(rec)], effect="blur", realtime=True, loop=True, resolution=64)
    stop = threading.Event()
    # The warm-up lasts until the run has returned (60 s at most): a run that waited for it takes 60 s, one that ends
    # at once 1-3 s here (loaded or not), so the bound is far from both (it was 4 s against a 6 s warm-up).
    warm_up_over = threading.Event()
    started = time.monotonic()
    try:
        report = run_live(job, segmenter=red_key_segmenter(SlowRedKey(60.0, first_only=True, release=warm_up_over)),
                          stop=stop, on_effects=lambda _: threading.Timer(0.3, stop.set).start())  # fmt: skip
    finally:
        warm_up_over.set()
    assert time.monotonic() - started < 30.0, "the run waited for the warm-up to end"
    assert report["ended_by"] == "stop" and report["frames_shown"] == 0
    assert not rec.exists() and not list(tmp_path.glob(".rec*")), "an empty recording was left"


class _SleepingLayer(torch.nn.Module):
    """A layer taking ``seconds`` (sleeping: no CPU, no GIL)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return x


class ManyLayersFirst(RedKey):
    """RedKey behind ``layers`` slow layers on its first call only: a first warm-up of a model of many modules (eager
    PyTorch, the latency budget's timings)."""

    def __init__(self, layers: int, seconds: float) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(_SleepingLayer(seconds) for _ in range(layers))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 1:
            for layer in self.layers:
                x = layer(x)
        return super().forward(x)


def test_a_warm_up_left_by_a_stop_ends_at_its_next_layer(tmp_path, monkeypatch):
    """A stop during the warm-up ends the run at once, leaving the warm-up thread (``exiting.abandon``); that thread
    ran the model on to the end: in an API user's process, seconds of CPU for nothing (the latency budget's timings,
    a first run of a big model), and under the command line, the GIL taken back from the leaving main thread at each
    turn. It now ends before the model's next module. The warm-up here is 200 layers of 0.1 s (20 s); the thread must
    be gone well before that (a loaded machine gets 5 s, a quarter of it)."""
    from birefvid import exiting

    monkeypatch.setattr(exiting, "_abandoned", [])  # this test's abandoned thread only
    clip = write_scene(tmp_path / "cam.mkv", 48)
    job = build_live_job(str(clip), [str(tmp_path / "rec.mp4")], effect="blur", realtime=True, loop=True, resolution=64)
    stop = threading.Event()
    model = ManyLayersFirst(200, 0.1)
    report = run_live(job, segmenter=red_key_segmenter(model), stop=stop, on_effects=lambda _: threading.Timer(0.3, stop.set).start())
    returned = time.monotonic()
    assert report["ended_by"] == "stop" and report["frames_shown"] == 0
    left = [t for t in threading.enumerate() if t.name == "birefvid-live-warm-up"]
    for thread in left:
        thread.join(max(0.0, returned + 5.0 - time.monotonic()))
    assert not any(t.is_alive() for t in left), "the abandoned warm-up ran on through the model"
    assert not exiting.must_exit_now()  # nothing left in native code: an API user's process exits normally


def test_a_streams_recording_starts_after_the_warm_up_without_a_held_picture(tmp_path):
    """A UDP stream keeps coming while the model warms up (2.5 s here): the run starts from its newest
    frame, so the recording opens at 0 with no picture held for the warm-up (it was: a 2.5 s still)."""
    import subprocess

    from live_e2e_tools import end_process
    from live_media import free_port
    from system_tools import need_binary

    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    clip = write_scene(tmp_path / "scene.mkv", 48)
    port = free_port()
    sender = subprocess.Popen(
        [ffmpeg, "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip), "-t", "30", "-c:v", "libx264",
         "-preset", "ultrafast", "-g", "12", "-pix_fmt", "yuv420p", "-f", "mpegts", f"udp://127.0.0.1:{port}?pkt_size=1316"],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        out = tmp_path / "rec.mkv"
        job = build_live_job(f"udp://127.0.0.1:{port}", [str(out)], effect="mask", duration=3.0, read_timeout=10.0)
        model = SlowRedKey(2.5, first_only=True)
        report = run_live(job, segmenter=red_key_segmenter(model))
    finally:
        end_process(sender)
    assert model.calls >= 2  # the warm-up frame, then the newest one before anything was shown
    times = [t for _, t in read_frames(out)]
    assert times[0] == 0.0 and len(times) == report["frames_shown"]
    assert max(b - a for a, b in zip(times, times[1:])) < 0.3, times[:5]
    assert times[-1] < 3.5


def test_an_rtsp_output_sends_no_sound_from_before_its_first_picture(tmp_path):
    """The model warms up for 1.8 s while an RTSP camera with a microphone keeps sending: the run starts from
    its newest frame, in the middle of a flash and its tone. The RTSP output placed the warm-up's sound
    ahead of its first picture (its clock starts at the stream's lag, so that sound was not cut as a
    recording's is): players heard the tone 1.5 s after the flash. Now picture and tone start together."""
    import subprocess

    from live_e2e_tools import end_process, listening, wait_for
    from live_media import RtspServer, flash_and_tone, free_port, make_flash_clip
    from system_tools import need_binary

    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    clip = make_flash_clip(tmp_path / "flash.mp4", seconds=6.0, flash=(1.5, 2.5))
    port = free_port()
    received = tmp_path / "rx.mkv"
    receiver = subprocess.Popen([ffmpeg, "-nostdin", "-loglevel", "error", "-rtsp_flags", "listen", "-listen_timeout", "60",
                                 "-i", f"rtsp://127.0.0.1:{port}/out", "-map", "0", "-c", "copy", str(received)])  # fmt: skip
    try:
        wait_for(lambda: listening(port), 20, "ffmpeg listening for RTSP")
        with RtspServer(clip, audio=True) as server:
            job = build_live_job(server.url, [f"rtsp://127.0.0.1:{port}/out"], effect="blur", duration=2.5)
            run_live(job, segmenter=red_key_segmenter(SlowRedKey(1.8, first_only=True)))
        assert receiver.wait(timeout=30) == 0
    finally:
        end_process(receiver)
    bright, tone, _, _ = flash_and_tone(received)
    assert bright is not None and tone is not None and abs(bright - tone) <= 0.08, (bright, tone)


def test_duration_bounds_the_wait_for_a_stream_that_never_answers(tmp_path):
    """The retry policy reconnects forever by default; a run of 1.5 s must not wait longer than that for a
    first picture, and its error line says why the stream did not answer (it did not before)."""
    from birefvid.errors import SourceError

    out = tmp_path / "never.mp4"
    job = build_live_job("rtsp://127.0.0.1:1/cam", [str(out)], effect="mask", duration=1.5)
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"^no picture from rtsp://127.0.0.1:1/cam within 1.5 s, the run's duration; the last try: Connection refused; nothing was recorded$"):
        run_live(job, segmenter=red_key_segmenter())
    # the run's 1.5 s and a loaded machine's start; a run that kept reconnecting would never end
    assert time.monotonic() - started < 20.0
    assert list(tmp_path.iterdir()) == []


def test_a_files_first_picture_is_not_bounded_by_a_short_duration(tmp_path, caplog):
    """A file opens or fails on its own: a run shorter than its opening (a busy machine took over 1 s
    for the first picture of a 1 s run) records it, where it failed with "no picture within 1 s".
    The file here is a named pipe, as a user feeds ffmpeg's output in: it plays without its sound
    (which needs a second reader of the file) where the run waited for ever."""
    data = write_scene(tmp_path / "scene.mkv", 24).read_bytes()
    slow = tmp_path / "slow.mkv"  # a file that takes 0.5 s to open: a named pipe, written to after that
    os.mkfifo(slow)

    def write_late() -> None:
        time.sleep(0.5)
        with open(slow, "wb") as pipe:
            pipe.write(data)

    writer = threading.Thread(target=write_late, daemon=True)
    writer.start()
    out = tmp_path / "short.mp4"
    job = build_live_job(str(slow), [str(out)], effect="mask", duration=0.2)
    run = threading.Thread(target=run_live, args=(job,), kwargs={"segmenter": red_key_segmenter()}, daemon=True)
    run.start()
    run.join(30)
    assert not run.is_alive(), "the run from a named pipe never started"
    writer.join(10)
    assert "is a pipe, which can be read only once: its sound is left out" in caplog.text
    frames = read_frames(out)
    assert frames and frames[0][0].shape == (SIZE[1], SIZE[0], 3)


def test_stop_ends_a_run_still_waiting_for_its_stream(tmp_path):
    """``stop`` set while a stream is still retried for its first picture ends the run at once with
    one clear error (run_live waited for the stream forever, retrying, stop or not)."""
    stop = threading.Event()
    job = build_live_job("rtsp://127.0.0.1:1/cam", [str(tmp_path / "never.mp4")], effect="mask")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_live(job, segmenter=red_key_segmenter(), stop=stop)
        except BaseException as e:  # noqa: BLE001 - checked below
            errors.append(e)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    time.sleep(1.0)
    stop.set()
    runner.join(4.0)
    assert not runner.is_alive(), "run_live ignored stop while waiting for the stream"
    assert [str(e) for e in errors] == ["no picture from rtsp://127.0.0.1:1/cam before the run was stopped; the last try: Connection refused; nothing was recorded"]
    assert list(tmp_path.iterdir()) == []


def test_stop_still_records_the_pictures_already_shown(tmp_path, monkeypatch):
    """Pictures composed before ``stop`` was set reach the recording, and the report counts what it holds
    (the sink thread gave up its queue at once: the report counted pictures the file never got)."""
    from birefvid.io.record_sink import RecordingSink

    clip = write_scene(tmp_path / "cam.mkv", 10 * FPS)
    out = tmp_path / "out.mkv"
    stop = threading.Event()
    send = RecordingSink._send

    def slow_send(self, picture, t):  # a slow encoder (10 fps for a 24 fps source): the stop comes while pictures wait for it
        send(self, picture, t)
        if self.frames_written >= 5:
            time.sleep(0.1)
        if self.frames_written == 10:
            stop.set()

    monkeypatch.setattr(RecordingSink, "_send", slow_send)
    report = run_live(build_live_job(str(clip), [str(out)], effect="mask", realtime=True), segmenter=red_key_segmenter(), stop=stop)
    assert report["ended_by"] == "stop" and report["frames_shown"] > 10
    assert len(read_frames(out)) == report["frames_shown"] == report["stats"]["frames_shown"]


def test_a_full_disk_under_stats_json_ends_the_run_with_one_error_and_keeps_the_finished_parts(tmp_path):
    """--stats-json on a disk that fills mid-run: a SinkError (it was an OSError traceback and a C++ abort),
    the finished parts of the recording kept, the unfinished one gone."""
    from fs_fixtures import full_dir

    from birefvid.errors import SinkError

    clip = write_scene(tmp_path / "cam.mkv", 6 * FPS)
    job = build_live_job(str(clip), [str(tmp_path / "rec.mkv")], effect="mask", realtime=True, record_segment=1.0, stats_every=0.15)
    with full_dir(tmp_path / "full", "4k") as folder:
        with pytest.raises(SinkError, match="stats_json .*cannot write it"):
            run_live(job, segmenter=red_key_segmenter(), stats_json=folder / "stats.jsonl")
    parts = sorted(tmp_path.glob("rec-*.mkv"))
    assert parts and not list(tmp_path.glob(".rec*"))
    for part in parts:  # each kept part is whole: it spans its second (a loaded machine may drop a few frames inside it)
        times = [t for _, t in read_frames(part)]
        assert len(times) >= FPS // 2 and times[-1] >= 1.0 - 2.5 / FPS, times


def test_a_part_whose_time_ends_during_an_outage_is_committed_then_not_when_the_stream_returns(tmp_path):
    """Parts of 1 s from a UDP stream with sound that stops for 3.5 s: the part open when it stopped was
    kept open (uncommitted, lost if the machine died) until pictures came back, and its sound was
    padded with the outage's silence (a 1 s part lasted 4-5 s). Now it is committed during the outage
    and no part lasts much over its second."""
    import subprocess

    from live_e2e_tools import end_process
    from live_media import free_port
    from system_tools import need_binary

    ffmpeg = need_binary("ffmpeg", "ffmpeg")
    clip = write_scene(tmp_path / "scene.mkv", 48)
    port = free_port()

    def send(seconds: float) -> subprocess.Popen:
        return subprocess.Popen(
            [ffmpeg, "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip), "-f", "lavfi", "-i",
             "sine=frequency=440:sample_rate=48000", "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "12",
             "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "mpegts", f"udp://127.0.0.1:{port}?pkt_size=1316"],
            stdin=subprocess.DEVNULL,
        )  # fmt: skip

    out = tmp_path / "rec" / "gate.mkv"
    out.parent.mkdir()
    job = build_live_job(f"udp://127.0.0.1:{port}", [str(out)], effect="mask", read_timeout=0.5, record_segment=1.0)
    stop, result = threading.Event(), {}
    sender = send(3.0)
    runner = threading.Thread(target=lambda: result.update(run_live(job, segmenter=red_key_segmenter(), stop=stop)))
    try:
        runner.start()
        assert sender.wait(timeout=30) == 0
        time.sleep(3.0)  # the outage: read timeout 0.5 s, then the open part's second is long over
        during = sorted(p.name for p in out.parent.iterdir())
        sender = send(2.0)
        assert sender.wait(timeout=30) == 0
        time.sleep(0.3)
    finally:
        stop.set()
        runner.join(30)
        end_process(sender)
    assert not [name for name in during if name.startswith(".")], f"a part stayed open through the outage: {during}"
    parts = result["recorded"][str(out)]
    assert len(parts) >= 4
    for part in parts:
        with av.open(part) as c:
            assert c.duration / 1e6 < 1.6, (part, c.duration / 1e6)  # a part's sound ends with its second


def test_a_run_that_fills_the_disk_reports_the_parts_it_kept(tmp_path):
    """A recording in parts on a disk that fills: the run fails with one error, and its report (the CLI's
    --report, written for a source lost before) says it failed, why, and lists exactly the parts kept."""
    from fs_fixtures import full_dir

    from birefvid.errors import SinkError

    clip = write_scene(tmp_path / "cam.mkv", 6 * FPS)
    with full_dir(tmp_path / "full", "24k") as folder:  # a part here is ~13 KB
        job = build_live_job(str(clip), [str(folder / "rec.mkv")], effect="alpha", realtime=True, record_segment=1.0)
        with pytest.raises(SinkError, match="No space left on device") as failed:
            run_live(job, segmenter=red_key_segmenter())
        kept = sorted(str(p) for p in folder.iterdir())
    report = failed.value.report
    assert report["ended_by"] == "failed" and "No space left on device" in report["error"]
    assert report["recorded"][str(folder / "rec.mkv")] == kept and kept and not [p for p in kept if "/." in p]
    assert report["frames_shown"] >= FPS and report["stats"]["final"]


def test_a_report_that_cannot_be_written_is_one_error_and_leaves_no_half_file(tmp_path):
    """``birefvid live --report`` on a disk that filled or in a folder removed during a run of days:
    an OSError traceback before; now one SinkError line naming the option, and no truncated JSON."""
    from fs_fixtures import full_dir

    from birefvid.commands.live import _write_report
    from birefvid.errors import SinkError

    big = {"recorded": {"gate.mkv": [f"gate-{i:06d}.mkv" for i in range(2000)]}}  # a week of hourly parts, and more
    with pytest.raises(SinkError, match=r"report .*r\.json: cannot write it \(No such file or directory\)"):
        _write_report(str(tmp_path / "gone" / "r.json"), big)
    with full_dir(tmp_path / "full", "4k") as folder:
        with pytest.raises(SinkError, match=r"cannot write it \(No space left on device\); the 2000 recorded files "
                                            r"\(gate-000000\.mkv to gate-001999\.mkv\) were written and kept$"):
            _write_report(str(folder / "r.json"), big)
        assert not (folder / "r.json").exists()
    with pytest.raises(SinkError, match=r"directory\); the recording one\.mkv was written and kept$"):
        _write_report(str(tmp_path / "gone" / "r.json"), {"recorded": {"one.mkv": ["one.mkv"]}})


@pytest.mark.parametrize("cached,costs_ms,want", [
    # a busy machine: 192 fits this time, but 160 (below) is exported from the last run: no 13-25 s export again
    ({160}, {160: 150, 192: 240, 224: 300}, 160),
    # 224, exported last time, took 270 ms against a budget of 250: within the margin, so taken over exporting 192
    ({224}, {160: 150, 192: 240, 224: 270}, 224),
    # 224 took 300 ms, well over: 192 is exported now, as before
    ({224}, {160: 150, 192: 240, 224: 300}, 192),
    # the chosen size is cached: nothing changes
    ({160, 192}, {160: 150, 192: 240, 224: 270}, 192),
])
def test_latency_budget_prefers_a_neighbour_size_already_exported(monkeypatch, caplog, cached, costs_ms, want):
    """`live` on a busy machine picked 160, 224 and 192 on three runs, each exported for OpenVINO (13-25 s): a ladder
    neighbour whose export is cached is now taken, and the -v log says why."""
    import logging

    import birefvid.runtime.live as live

    seg = red_key_segmenter()
    image = scene_frame(0, (320, 240))
    monkeypatch.setattr(live, "SIZE_LADDER", (160, 192, 224, 256))
    monkeypatch.setattr(live, "_timed", lambda fn, arg: costs_ms.get(seg.resolution[0], 10_000) / 1000)  # a fake clock
    monkeypatch.setattr(seg, "needs_export", lambda h, w: seg.inference_size(h, w)[0] not in cached)
    with caplog.at_level(logging.INFO, logger="birefvid.runtime.live"):
        assert choose_resolution(seg, image, 0.25, ceiling=1024) == (want, want)
    assert seg.resolution == (want, want)
    # -v names the size taken: the segmenter's own line, logged before, names the model's native size
    assert f"latency budget: the model runs at {want}x{want} (budget 250 ms)" in caplog.text
    if want != 192:
        assert f"latency budget: {want}x{want}, exported already" in caplog.text and "rather than 192x192" in caplog.text


def _calibrate_on_a_fake_clock(monkeypatch, caplog, costs_ms, *, budget_s=0.25, resolution=64, backbone=None):
    """``choose_resolution`` on a Segmenter whose every size takes ``costs_ms[side]`` (the times a loaded machine
    measured), with no real timing: the chosen size, the sides timed, and the warnings logged."""
    import birefvid.runtime.live as live

    seg = red_key_segmenter()
    if backbone is not None:
        seg.backbone = backbone
    monkeypatch.setattr(live, "_timed", lambda fn, arg: costs_ms[seg.resolution[0]] / 1000)
    with caplog.at_level(logging.INFO, logger="birefvid.runtime.live"):
        chosen = choose_resolution(seg, scene_frame(0, (320, 240)), budget_s, ceiling=resolution)
    timed = [int(m[1]) for m in re.finditer(r"latency budget: (\d+)x\d+ takes", caplog.text)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    return chosen, timed, warnings


# a 2-core laptop with a browser busy beside it: every size costs about 4x its idle time, 64² alone fits 250 ms
BUSY_MS = {64: 150, 96: 340, 128: 600, 160: 940, 192: 1350, 256: 2400}


def test_a_busy_machine_keeps_the_budgets_floor_and_says_once_what_helps(monkeypatch, caplog):
    """On a busy laptop only 64² fit the budget and live ran there, its masks a blob around the person, with no word
    why. Now the size stays at the floor, where the model still segments, and one warning says the mask refreshes
    less often and what to do; sizes under the floor are not even timed."""
    chosen, timed, warnings = _calibrate_on_a_fake_clock(monkeypatch, caplog, BUSY_MS, resolution=256)
    assert chosen == (BUDGET_FLOOR, BUDGET_FLOOR)
    assert timed == [BUDGET_FLOOR]  # over budget at once: nothing larger, nothing smaller is tried
    assert len(warnings) == 1, warnings
    said = warnings[0]
    assert "the model took 600 ms at 128x128" in said and "250 ms latency_budget_ms" in said
    assert "about 1.7 times a second" in said and "picture keeps the camera's rate" in said
    assert "close busy programs" in said and "choose the size with resolution" in said
    assert "smaller model" not in said  # a custom module: no registry model to name


def test_the_floor_warning_names_a_smaller_model_where_there_is_one(monkeypatch, caplog):
    """A swin_v1_l model (BiRefNet's general ones) too slow at the floor: the warning names `lite` as the way out."""
    _, _, warnings = _calibrate_on_a_fake_clock(monkeypatch, caplog, BUSY_MS, resolution=256, backbone="swin_v1_l")
    assert len(warnings) == 1 and "use a smaller model (model='lite')" in warnings[0], warnings


def test_a_machine_that_keeps_up_at_the_floor_hears_nothing_and_gets_the_largest_size(monkeypatch, caplog):
    idle = {side: ms / 4 for side, ms in BUSY_MS.items()}  # 150 ms at 128², 235 at 160², 338 at 192²
    chosen, timed, warnings = _calibrate_on_a_fake_clock(monkeypatch, caplog, idle, resolution=256)
    assert chosen == (160, 160) and timed == [128, 160, 192] and warnings == []


def test_a_segmenter_set_under_the_floor_keeps_its_own_size(monkeypatch, caplog):
    """An app's Segmenter at 96² is the budget's ceiling: a busy machine leaves it at 96, never raised to the floor
    nor lowered under it."""
    chosen, timed, warnings = _calibrate_on_a_fake_clock(monkeypatch, caplog, BUSY_MS, resolution=96)
    assert chosen == (96, 96) and timed == [96] and len(warnings) == 1, warnings
    assert "340 ms at 96x96, its Segmenter's own size" in warnings[0]


def test_live_on_a_machine_too_slow_for_the_budget_runs_the_tiny_model_at_the_floor(tmp_path, monkeypatch, capfd):
    """`birefvid live` with the tiny model and a budget no machine meets (1 ms), as a busy laptop's is: the run
    keeps the floor's size (its report says so), its masks are made, and stderr has one warning line naming the
    command's own options. A size the user gives, under the floor, is used as given and says nothing (that run
    through the command's ``main`` in this process: what it prints is the same, a second process start-up is not needed)."""
    from live_e2e_tools import run_live_in_process

    clip = write_scene(tmp_path / "cam.mkv", 12)
    common = ["--source", str(clip), "--effect", "mask", "--model", "tiny", "--device", "cpu", "--backend", "torch", "-q"]

    run = subprocess.run([sys.executable, "-m", "birefvid", "live", *common, "--latency-budget", "1", "--sink", "floor.mkv",
                          "--report", "report.json"], capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr
    report, lines = json.loads((tmp_path / "report.json").read_text()), run.stderr.splitlines()
    assert report["resolved"]["resolution"] == [BUDGET_FLOOR, BUDGET_FLOOR]
    assert report["frames_shown"] == 12 and len(read_frames(tmp_path / "floor.mkv")) == 12
    warned = [line for line in lines if line.startswith("birefvid: warning: ")]
    assert len(warned) == 1 and "too busy for the 1 ms --latency-budget" in warned[0], lines
    assert "at 128x128" in warned[0] and "--resolution" in warned[0], warned

    code, err = run_live_in_process([*common, "--resolution", "64", "--sink", "mine.mkv", "--report", "report.json", "--overwrite"],
                                    tmp_path, monkeypatch, capfd)  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["resolved"]["resolution"] == [64, 64]
    assert not [line for line in err.splitlines() if line.startswith("birefvid: warning: ")], err


def test_latency_budget_names_the_size_the_model_runs_at_with_keep_aspect(monkeypatch, caplog):
    """`live --keep-aspect -v` on a 16:9 camera said "the model runs at 128x128" where each frame went to the model
    at 160x96 (128x128's pixels in the frame's shape): the line names the size the model sees."""
    import birefvid.runtime.live as live
    from birefvid.runtime import Segmenter

    seg = Segmenter(module=RedKey(), resolution=64, device="cpu", precision="fp32", keep_aspect=True)
    image = scene_frame(0, (320, 180))
    monkeypatch.setattr(live, "SIZE_LADDER", (64, 96, 128, 160))
    monkeypatch.setattr(live, "_timed", lambda fn, arg: {64: 0.05, 96: 0.1, 128: 0.2}.get(seg.resolution[0], 10.0))  # a fake clock
    monkeypatch.setattr(seg, "needs_export", lambda h, w: False)
    with caplog.at_level(logging.INFO, logger="birefvid.runtime.live"):
        assert choose_resolution(seg, image, 0.25, ceiling=1024) == (128, 128)
    assert seg.inference_size(180, 320) == (96, 160)
    assert "latency budget: the model runs at 160x96 (128x128's pixels in the frame's shape; budget 250 ms)" in caplog.text


def test_a_recording_whose_name_was_taken_meanwhile_fails_with_a_report_naming_where_it_was_kept(tmp_path):
    """Another process wrote cam.mkv while this live run recorded to it: the run replaced it at the end. Now its
    recording is kept as `cam (2).mkv` and the run fails, its error's report (what `--report` writes) listing that file."""
    from birefvid.errors import OutputKeptError

    clip = write_scene(tmp_path / "in.mkv", 6)
    out = tmp_path / "cam.mkv"
    job = build_live_job(str(clip), [str(out)], effect="mask", smooth="none", carry=False)
    with pytest.raises(OutputKeptError, match=r"kept as .*cam \(2\)\.mkv") as caught:
        run_live(job, segmenter=red_key_segmenter(), on_effects=lambda effects: out.write_bytes(b"the other run's"))
    kept = str(tmp_path / "cam (2).mkv")
    assert out.read_bytes() == b"the other run's" and len(read_frames(kept)) == 6
    assert caught.value.report["recorded"] == {str(out): [kept]} and "kept as" in caught.value.report["error"]


def test_a_file_shown_before_any_model_run_reports_no_model_rate(tmp_path):
    """A file played without --realtime is shown as fast as it decodes: 24 small frames went by while
    a slow model still ran, and the summary said "model 0.0 fps", as if the model never ran."""
    from birefvid.api import live_summary
    from birefvid.runtime.live_stats import format_line

    clip = write_scene(tmp_path / "cam.mkv", FPS)
    # a size given: the latency budget's calibration would first time this 3 s model three times (9 s), which the
    # stats of the run do not count either way
    job = build_live_job(str(clip), [str(tmp_path / "out.mkv")], effect="mask", carry=False, smooth="none", resolution=64)
    # the warm-up's call fast: the display waits for it whatever it costs, and it is not the model run this is about
    report = run_live(job, segmenter=red_key_segmenter(SlowRedKey(3.0, after_first=True)))
    final = report["stats"]
    assert report["frames_shown"] == FPS and final["seconds"] < 3.0  # every frame shown before a second model run ended
    assert final["model_fps"] is None and final["model_ms_median"] is None
    assert "model - fps" in live_summary(report) and "model - fps" in format_line(final)
    assert json.loads(json.dumps(final))["model_fps"] is None  # the JSON says null, not 0.0


def write_blue_resizing(path, parts, fps=FPS):
    """A VP9 WebM of plain blue (the red-key model's background) whose picture size changes midway, as a stream
    back from a reconnect in another shape: ``parts`` is ((width, height), frames) in order."""

    def blue(index, size):
        picture = np.zeros((size[1], size[0], 3), np.uint8)
        picture[..., 2] = 255
        return picture

    make_resizing_video(path, parts, fps, picture_at=blue)


@pytest.mark.parametrize("effect", ["mask", "alpha"])
def test_bars_around_a_picture_of_another_shape_are_transparent(tmp_path, effect):
    """A source whose pictures turn 16:9 in a 4:3 run is fitted inside black bars; with --effect mask or alpha the
    model decided what the bars became (half subject, inverted), where `process` makes them transparent."""
    clip = tmp_path / "spliced.webm"
    write_blue_resizing(clip, [((96, 72), 6), ((96, 54), 6)])  # 96x54 fits 96x72 with 9 rows of bars above and below
    out = tmp_path / "out.mkv"  # FFV1: lossless, the alpha read back exactly
    job = build_live_job(str(clip), [str(out)], effect=effect, invert=True, carry=False, smooth="none")  # blue: all subject
    report = run_live(job, segmenter=red_key_segmenter())
    assert report["frames_shown"] == 12
    with av.open(str(out)) as c:
        pictures = [f.to_ndarray(format="gray" if effect == "mask" else "rgba") for f in c.decode(video=0)]
    alphas = [p if effect == "mask" else p[..., 3] for p in pictures]
    assert len(alphas) == 12 and all(a.shape == (72, 96) for a in alphas)
    assert all(a.min() >= 250 for a in alphas[:6])
    for a in alphas[6:]:
        assert a[:9].max() == 0 and a[63:].max() == 0, f"the bars are not transparent: {a[:9].max()}, {a[63:].max()}"
        assert a[10:62].min() >= 250  # the picture inside them is as the model said


def test_a_source_files_own_transparency_stays_hidden(tmp_path):
    """A file with its own alpha (FFV1 RGBA here) played live: what it hides stays hidden in the mask, as in `process`."""
    clip = tmp_path / "half.mkv"
    rgba = np.zeros((48, 64, 4), np.uint8)
    rgba[..., 2] = 255  # blue: all subject once inverted
    rgba[:, 32:, 3] = 255  # the left half transparent
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("ffv1", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "bgra"
        for i in range(4):
            frame = av.VideoFrame.from_ndarray(rgba, format="rgba")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    out_path = tmp_path / "mask.mkv"
    job = build_live_job(str(clip), [str(out_path)], effect="mask", invert=True, carry=False, smooth="none")
    assert run_live(job, segmenter=red_key_segmenter())["frames_shown"] == 4
    with av.open(str(out_path)) as c:
        masks = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    assert len(masks) == 4
    for m in masks:
        assert m[:, :32].max() == 0 and m[:, 32:].min() >= 250


@pytest.mark.parametrize("realtime", [True, False])
def test_a_slow_start_counts_in_neither_latency_nor_mask_age(tmp_path, realtime):
    """A first model call of 2 s (a first export takes 10-60 s) on a file, whose clock waits for the run: the first
    frames' latency and mask age are those of the frames after (a warm 2 s run said mask age p95 6183 ms, from a
    first frame timed before the model loaded, and its second frame's latency counted the warm-up without --realtime)."""
    clip = write_scene(tmp_path / "clip.mkv", 12 if not realtime else 36)
    lines = tmp_path / "stats.jsonl"
    job = build_live_job(str(clip), [str(tmp_path / "out.mkv")], effect="mask", realtime=realtime, stats_every=0.25, smooth="none")
    report = run_live(job, segmenter=red_key_segmenter(SlowRedKey(2.0, first_only=True)), stats_json=lines)
    periods = [json.loads(line) for line in lines.read_text().splitlines()]
    # read at the reader's pace every frame is shown; played in real time a loaded box drops some (30 of 36 seen), as it should
    assert (report["frames_shown"] == 12 if not realtime else report["frames_shown"] >= 18) and periods[-1]["final"], report["frames_shown"]
    for p in periods:  # the first period's (6 frames with --realtime) and the whole run's
        if p["frames_shown"]:
            assert p["latency_ms_p95"] < 500 and p["mask_age_ms_p95"] < 500, p


@pytest.mark.parametrize("landing", ["after it began", "before it began"])
def test_a_stop_landing_while_the_warm_up_thread_starts_hands_it_to_exiting(monkeypatch, landing):
    """Ctrl-C or SIGTERM landing in the warm-up thread's start() (a first export of 20-40 s about to begin) left it
    outside the try that hands it to ``exiting``: the command line then left normally with the export running in
    native code, which aborts the process at exit (SIGABRT, "terminate called without an active exception").
    A thread the signal kept from beginning is not handed over: nothing runs, a normal exit is safe."""
    from birefvid import exiting
    from birefvid.runtime.live import run_niced

    monkeypatch.setattr(exiting, "_abandoned", [])
    exporting, release = threading.Event(), threading.Event()

    def export():  # stands for the export: native work nothing can stop
        exporting.set()
        release.wait(10)

    real_start = threading.Thread.start

    def start_then_signal(thread):
        if thread.name != "birefvid-live-warm-up":
            return real_start(thread)
        if landing == "after it began":
            real_start(thread)
        raise KeyboardInterrupt  # the signal handler's raise, within start()

    try:
        with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
            patched.setattr(threading.Thread, "start", start_then_signal)
            run_niced(export)
        assert exiting.must_exit_now() == (landing == "after it began")
        assert exporting.wait(0 if landing == "before it began" else 5) == (landing == "after it began")  # it runs on
    finally:
        release.set()


def _run_with_a_stop_as_it_starts(thread: str, tmp_path, monkeypatch):
    """A live run of a file into out.mkv with a Ctrl-C or SIGTERM landing as its ``thread`` starts: its report, or
    None when the stop escaped the run (caught here: pytest would take it for the user's and stop the session)."""
    clip = write_scene(tmp_path / "cam.mkv", 2 * FPS)
    real_start = threading.Thread.start

    def start_then_signal(t):
        real_start(t)
        if t.name == thread:
            raise KeyboardInterrupt  # the signal handler's raise, as start() returns

    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "start", start_then_signal)
        try:
            return run_live(build_live_job(str(clip), [str(tmp_path / "out.mkv")], effect="mask", realtime=True),
                            segmenter=red_key_segmenter())  # fmt: skip
        except KeyboardInterrupt:
            return None


@pytest.mark.parametrize("thread", ["birefvid-live-sinks", "birefvid-live-model"])
def test_a_stop_landing_while_the_runners_threads_start_ends_the_run_as_a_stop(tmp_path, monkeypatch, thread):
    """Ctrl-C or SIGTERM landing as the runner started its writer and model threads, before its try: the stop
    escaped as a failure (no report, the recordings aborted), and both threads were left waiting forever, holding
    the sinks and the model (in an API user's process: two threads more at each such stop)."""
    report = _run_with_a_stop_as_it_starts(thread, tmp_path, monkeypatch)
    deadline = time.monotonic() + 3
    while (left := [t.name for t in threading.enumerate() if t.name.startswith("birefvid-live")]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == []
    assert report is not None and report["ended_by"] == "interrupted", "the stop escaped the run as a failure"


@pytest.mark.parametrize("thread", ["birefvid-live-sinks", "birefvid-live-model"])
def test_a_stop_before_the_first_picture_commits_no_empty_recording(tmp_path, monkeypatch, thread):
    """Ctrl-C or SIGTERM landing as the runner starts, before its first picture: the recording was committed with no
    frame in it ("no frames were written to out.mkv"), listed as recorded, and the rerun was refused for the file it
    left (output exists). As for a run closed during its warm-up, nothing shown is nothing recorded."""
    report = _run_with_a_stop_as_it_starts(thread, tmp_path, monkeypatch)
    if report is None:
        pytest.fail("the stop escaped the run")
    assert report["ended_by"] == "interrupted" and report["frames_shown"] == 0
    assert report["recorded"] == {} and not (tmp_path / "out.mkv").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["cam.mkv"]  # no temporary file left either


def test_a_stop_landing_as_the_first_frame_is_retimed_ends_the_run_as_a_stop(tmp_path, monkeypatch):
    """Ctrl-C or SIGTERM landing as the runner re-timed a file's first frame (``LiveModel.retime``), before its try:
    the stop escaped the run as a KeyboardInterrupt (exit 130 or 143, no report) where one a moment later is an
    "interrupted" report, nothing recorded."""
    from birefvid.runtime.live import ModelPath

    clip = write_scene(tmp_path / "cam.mkv", 2 * FPS)
    real_retime = ModelPath.retime

    def retime_then_signal(self, cf, captured):
        real_retime(self, cf, captured)
        raise KeyboardInterrupt  # the signal handler's raise, as retime returns

    monkeypatch.setattr(ModelPath, "retime", retime_then_signal)
    try:
        report = run_live(build_live_job(str(clip), [str(tmp_path / "out.mkv")], effect="mask", realtime=True),
                          segmenter=red_key_segmenter())  # fmt: skip
    except KeyboardInterrupt:  # caught here: pytest would take it for the user's and stop the session
        pytest.fail("the stop escaped the run")
    assert report["ended_by"] == "interrupted" and report["frames_shown"] == 0
    assert report["recorded"] == {} and [p.name for p in tmp_path.iterdir()] == ["cam.mkv"]


def test_the_summary_line_gives_the_mask_age(tmp_path):
    """The end line gave latency but not how old the masks were when composited, which the stats lines and the
    report already measured: a slow model's masks are frames old, and the line now says by how much."""
    from birefvid.api import live_summary

    clip = write_scene(tmp_path / "cam.mkv", FPS)
    job = build_live_job(str(clip), [str(tmp_path / "out.mkv")], effect="mask", realtime=True, carry=False, smooth="none")
    report = run_live(job, segmenter=red_key_segmenter(SlowRedKey(0.15)))
    final = report["stats"]
    assert final["mask_age_ms_median"] >= 100  # several frames old (a frame is 42 ms)
    line = live_summary(report)
    assert f", mask age {final['mask_age_ms_median']}/{final['mask_age_ms_p95']} ms median/p95); ended: " in line, line
    report["stats"] = {k: v for k, v in final.items() if not k.startswith("mask_age")}  # an older report, without the figures
    assert ", mask age -/- ms median/p95); " in live_summary(report)


def _jumping_scene(index: int, size: tuple[int, int] = (160, 64), side: int = 24) -> np.ndarray:
    """Blue with a red square that moves 1 px a frame from x=4: a loop of N frames jumps it N-1 px back."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (0, 0, 255)
    top, left = (h - side) // 2, 4 + index
    img[top : top + side, left : left + side] = (255, 0, 0)
    return img


def test_a_new_connection_is_never_shown_with_the_last_connections_mask(tmp_path):
    """Each loop of a file (as each reconnect of a stream) starts a new scene: its first picture waits for its own
    mask, as the run's first does. It was composed with the last connection's mask carried over, so for the model's
    time after every loop (or reconnect) the subject was cut where it had been and the background left unblurred
    where the subject had been (4 frames a loop with `tiny` at 128²; here the slow model makes it several).

    The square jumps 47 px back at each loop, twice its side, so a mask from before the jump misses it entirely;
    within a loop it moves 1 px a frame, so even a mask 0.75 s old covers a quarter of it."""
    frames = 48  # 2 s at 24 fps
    clip = tmp_path / "loop.mkv"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("ffv1", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 160, 64, "yuv444p"
        for i in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(_jumping_scene(i), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    recording = tmp_path / "matte.mov"
    job = build_live_job(str(clip), [str(recording)], effect="alpha", realtime=True, loop=True, duration=5.5)
    report = run_live(job, segmenter=red_key_segmenter(SlowRedKey(0.15)))
    assert report["ended_by"] == "duration"
    with av.open(str(recording)) as c:
        pictures = [f.to_ndarray(format="rgba") for f in c.decode(video=0)]
    covered = []
    for rgba in pictures:  # straight alpha: the colours are the picture's own, the matte is the run's mask
        square = (rgba[..., 0] > 127) & (rgba[..., 2] < 128)
        matte = rgba[..., 3] > 127
        covered.append((square & matte).sum() / max(square.sum(), 1))
    loops = sum(1 for a, b in zip(pictures, pictures[1:]) if _left_edge(b) < _left_edge(a) - 20)
    assert loops >= 2, f"the clip looped {loops} times in the recording"
    missed = [i for i, share in enumerate(covered) if share < 0.25]
    assert not missed, f"pictures {missed} of {len(pictures)} carry a mask that misses their subject: {[round(covered[i], 2) for i in missed]}"
    # the frames that came while each loop's first picture waited for the model are not the CPU's fault: no hint names them
    stats = report["stats"]
    assert 1 <= stats["dropped_for_new_connections"] <= stats["dropped"], stats
    hint = live_hint(report)
    assert hint is None or hint.startswith(f"{stats['dropped'] - stats['dropped_for_new_connections']} camera frames"), (hint, stats)


def _left_edge(rgba: np.ndarray) -> int:
    """The red square's leftmost column in a picture."""
    columns = np.flatnonzero(((rgba[..., 0] > 127) & (rgba[..., 2] < 128)).any(axis=0))
    return int(columns[0]) if columns.size else -1


def test_under_model_fps_a_new_connection_is_segmented_at_once_and_the_picture_keeps_the_source_rate(tmp_path):
    """A new connection's (here a file loop's) first picture waits for its own mask. Under ``--model-fps`` that wait
    was for the cap's next refresh: with ``--model-fps 1`` the sample clip looped (2 s) lost a quarter of its frames,
    and with a cap slower than the loop the file no longer played at all (one picture per refresh: 0.4 fps). Its
    first frame is segmented at once instead, and the cap still holds within each connection.

    Side by side with the source's own rate: a loaded box slows the source too. A 1 s clip looped with a refresh
    due every 2 s: the bug shows about one picture in 2 s; fixed, nearly every frame."""
    clip = write_scene(tmp_path / "loop.mkv", FPS)  # 1 s
    model = CountingRedKey()
    job = build_live_job(str(clip), [str(tmp_path / "out.mkv")], effect="mask", realtime=True, loop=True, duration=6,
                         carry=False, smooth="none", model_fps=0.5, resolution=64)  # fmt: skip
    report = run_live(job, segmenter=red_key_segmenter(model))
    final = report["stats"]
    assert report["ended_by"] == "duration"
    assert final["output_fps"] >= 0.5 * final["source_fps"], final
    connections = round(final["seconds"] * final["source_fps"] / FPS) + 1  # the loops played, the first included
    # one refresh per connection, plus the cap's own (one in 2 s) and the warm-up's first frame
    assert model.calls <= connections + final["seconds"] * 0.5 + 2, (model.calls, connections, final)


def test_under_model_fps_a_reconnect_after_an_outage_costs_no_refresh_beyond_its_own():
    """After an outage the model idles in its inbox, so a reconnect's first frame is taken at once; the wake-up
    ``offer`` raised for that frame came a moment after the model had taken it, and the next frame of the connection
    was segmented at once too, past the cap (2 model runs within 1 s of the reconnect under ``--model-fps 0.5``,
    every time here). The window is half the cap's interval: a loaded machine stretches it, not the interval."""
    from birefvid.frames import Frame
    from birefvid.io.live_base import CapturedFrame
    from birefvid.runtime.live import LiveStats, ModelPath
    from birefvid.temporal import make_smoother

    stop = threading.Event()
    model = CountingRedKey()
    path = ModelPath(red_key_segmenter(model), make_smoother("none"), None, LiveStats(), stop, max_fps=0.5)
    image = np.zeros((64, 64, 3), np.uint8)

    def captured(generation: int) -> CapturedFrame:
        return CapturedFrame(Frame(image, 0, Fraction(1, FPS), 0), time.monotonic(), generation, 0.0)

    path.segment(captured(0))  # the warm-up's frame
    path.start()
    try:
        time.sleep(2.3)  # the next refresh was due 2 s on: the model idles in its inbox, as through an outage
        before = model.calls
        path.offer(captured(1))  # the reconnect's first frame
        assert path.wait_for_connection(1, 30)
        reconnected = time.monotonic()
        while time.monotonic() - reconnected < 1.0:  # the new connection's frames at the source's rate
            path.offer(captured(1))
            time.sleep(1 / FPS)
        assert model.calls - before == 1, "a frame after the reconnect's was segmented within the cap's interval"
    finally:
        stop.set()
        path.join()


def _flat_clip(path, levels, fps, size=64):
    """An FFV1 clip whose frame i is a flat grey of ``levels[i]``."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv444p"
        for level in levels:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.full((size, size, 3), level, np.uint8), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.mark.parametrize("looped", [False, True], ids=["once", "loop"])
def test_a_recordings_background_video_plays_by_the_recordings_own_times(tmp_path, monkeypatch, capfd, looped):
    """A file shown without --realtime goes as fast as it is composed, and its recording is stamped with the file's
    own times; the background played by capture time, so 8 frames at 4 fps composed in 0.03 s all showed the
    background's first frame (frozen; a slow machine raced it instead). By the stamped time it is the frame on
    screen then, whatever the machine's speed, through --loop's restart too."""
    from live_e2e_tools import run_live_in_process

    _flat_clip(tmp_path / "cam.mkv", [0] * 8, 4)  # black: the model finds no subject, the picture is the background
    _flat_clip(tmp_path / "bg.mkv", [20 + 10 * i for i in range(8)], 20)  # 0.05 s a frame, 0.4 s a loop
    args = ["--source", "cam.mkv", "--effect", "replace", "--background", "bg.mkv", "--sink", "rec.mkv", "--model", "tiny",
            "--device", "cpu", "--backend", "torch", "-q", *(["--loop", "--duration", "2"] if looped else [])]  # fmt: skip
    code, err = run_live_in_process(args, tmp_path, monkeypatch, capfd)
    assert code == 0, err
    frames = read_frames(tmp_path / "rec.mkv")
    assert len(frames) == 8 if not looped else len(frames) >= 2, len(frames)
    for picture, t in frames:
        level = float(np.median(picture[:8, :8]))
        shown = int((t + 1e-3) / 0.05) % 8  # the background's frame on screen at t
        if t > 2.0 - 1e-3:  # past the first pass the displays held the last picture while the model segmented the
            # restarted file's first frame (and a hold past BACKGROUND_GAP_S pauses the background): one of its frames
            assert min(abs(level - (20 + 10 * i)) for i in range(8)) <= 4, f"at {t:.2f} s: {level}"
        else:
            assert abs(level - (20 + 10 * shown)) <= 4, f"at {t:.2f} s: background frame {shown} expected, got {level}"
