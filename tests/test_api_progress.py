"""process_video's progress in a notebook: ``progress=True`` shows a tqdm bar over the frames; a function
``progress(n)`` with ``on_start(total)`` still gets every frame, and may stop the run with KeyboardInterrupt."""

from __future__ import annotations

import numpy as np
import pytest

from birefvid.api import build_file_job, process_video, run_job
from process_fixtures import make_scene

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def seg(b0_segmenter):
    return b0_segmenter


def test_progress_true_shows_a_bar_over_the_frames(seg, tmp_path, capsys):
    src = make_scene(tmp_path / "in.mov", 7, with_audio=False).path
    totals = []
    report = process_video(src, tmp_path / "out.mov", segmenter=seg, progress=True, on_start=totals.append)
    err = capsys.readouterr().err
    assert report["frames"] == 7 and totals == [7]
    assert "7/7" in err and "frame" in err  # tqdm's last refresh: all frames of the known total


def test_run_job_takes_progress_true_too(seg, tmp_path, capsys):
    src = make_scene(tmp_path / "in.mov", 5, with_audio=False).path
    run_job(build_file_job(src, tmp_path / "out.mov"), segmenter=seg, progress=True)
    assert "5/5" in capsys.readouterr().err


def test_a_progress_function_gets_every_frame(seg, tmp_path, capsys):
    src = make_scene(tmp_path / "in.mov", 7, with_audio=False).path
    counts, totals = [], []
    process_video(src, tmp_path / "out.mov", segmenter=seg, progress=counts.append, on_start=totals.append, batch_size=3)
    assert sum(counts) == 7 and totals == [7]
    assert "7/7" not in capsys.readouterr().err  # no bar unless asked for


def test_a_progress_function_that_raises_keyboard_interrupt_stops_the_run_as_one(seg, tmp_path):
    """A notebook's stop button (or a callback raising KeyboardInterrupt) ends the run as an interrupt,
    not as a PipelineError about the encoder, and leaves no output that looks complete."""
    src = make_scene(tmp_path / "in.mov", 9, with_audio=False).path
    seen = []

    def stop_after_first_batch(n):
        seen.append(n)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        process_video(src, tmp_path / "out.mov", segmenter=seg, progress=stop_after_first_batch, batch_size=3)
    assert len(seen) == 1  # called once: the run stopped there
    assert not (tmp_path / "out.mov").exists()


def test_a_progress_function_that_fails_raises_its_own_error_not_the_encoders(seg, tmp_path):
    """An app's progress callback that raises (its bug, or its own way to cancel) gets that exception back,
    type and message as raised, not a PipelineError blaming the encode stage; no output is left."""
    src = make_scene(tmp_path / "in.mov", 9, with_audio=False).path

    class Cancelled(Exception):
        pass

    def cancel(n):
        raise Cancelled("the user closed the dialog")

    with pytest.raises(Cancelled, match="the user closed the dialog"):
        process_video(src, tmp_path / "out.mov", segmenter=seg, progress=cancel, batch_size=3)
    assert not (tmp_path / "out.mov").exists()


def test_a_progress_function_raising_output_kept_error_gets_it_back(seg, tmp_path):
    """The commit's OutputKeptError is turned into the run's report; the same error from an app's own callback (its
    own output's conflict) came back as an UnboundLocalError about 'frames' instead."""
    from birefvid.errors import OutputKeptError

    src = make_scene(tmp_path / "in.mov", 4, with_audio=False).path

    def theirs(n):
        raise OutputKeptError("output exists: theirs.png", kept="theirs (2).png")

    with pytest.raises(OutputKeptError, match="theirs.png") as caught:
        process_video(src, tmp_path / "out.mov", segmenter=seg, progress=theirs)
    assert caught.value.kept == "theirs (2).png" and not (tmp_path / "out.mov").exists()


@pytest.mark.parametrize("control, words", [
    (dict(stop=True), r"^process_video\(\) stop must be a threading.Event or None, got True$"),  # crashed every pipeline thread
    (dict(progress="yes"), r"^process_video\(\) progress must be True, False, None or a function"),
    (dict(segmenter="tiny"), r"^process_video\(\) segmenter must be a birefvid.Segmenter or None, got str; to name a model, pass model='tiny'$"),
])  # fmt: skip
def test_hooks_of_the_wrong_kind_are_one_type_error_before_the_run(tmp_path, capfd, control, words):
    clip = make_scene(tmp_path / "in.mov", 2, with_audio=False)
    with pytest.raises(TypeError, match=words):
        process_video(clip.path, tmp_path / "out.mkv", kind="mask", smooth="none", model="tiny", device="cpu", resolution=64, **control)
    assert capfd.readouterr().err == ""  # no thread's traceback on stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mov"]


def test_model_keywords_beside_a_segmenter_are_refused(tmp_path):
    """model="general", resolution=512 beside segmenter= were silently ignored, and the report's job named them."""
    from birefvid.api import iter_masks
    from birefvid.errors import ConfigError
    from process_fixtures import red_key_segmenter

    seg = red_key_segmenter()
    clip = make_scene(tmp_path / "in.mov", 2, with_audio=False)
    words = r"^process_video\(\) got segmenter= and model=, resolution=, which the Segmenter has fixed; give them to birefvid.Segmenter"
    with pytest.raises(ConfigError, match=words):
        process_video(clip.path, tmp_path / "out.mkv", kind="mask", segmenter=seg, model="general", resolution=512)
    with pytest.raises(ConfigError, match=r"^iter_masks\(\) got segmenter= and device=, which"):
        iter_masks(clip.path, segmenter=seg, device="cuda")
    with pytest.raises(ConfigError, match=r"got segmenter= and resolution=, which"):  # was NumPy's "truth value ... ambiguous"
        process_video(clip.path, tmp_path / "out.mkv", kind="mask", segmenter=seg, resolution=np.array([64, 64]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mov"]
    # what the Segmenter leaves to the run, and a default forwarded by a wrapper, still go with it
    report = process_video(clip.path, tmp_path / "out.mkv", kind="mask", smooth="none", segmenter=seg, batch_size=2, model=None)
    assert report["frames"] == 2


def test_progress_true_in_jupyter_without_ipywidgets_is_a_text_bar_without_tqdms_warning(monkeypatch, capsys, recwarn):
    """In a Jupyter kernel without ipywidgets, tqdm.auto warned "IProgress not found. Please update jupyter and
    ipywidgets", which reads as a broken install, before falling back to the text bar. Now: the text bar alone."""
    import sys
    import types

    from birefvid.api import _ProgressBar

    class ZMQInteractiveShell:  # what IPython's get_ipython() returns in a notebook kernel
        pass

    ipython = types.ModuleType("IPython")
    ipython.get_ipython = ZMQInteractiveShell
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("ipykernel.zmqshell"))
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # not installed
    for name in ("tqdm.auto", "tqdm.autonotebook", "tqdm.notebook"):  # imported afresh, as in a new kernel
        monkeypatch.delitem(sys.modules, name, raising=False)
    with _ProgressBar(True, None) as bar:
        control = bar.control()
        control.on_start(3)
        control.progress(3)
    assert not [w for w in recwarn if "IProgress" in str(w.message) or "ipywidgets" in str(w.message)]
    assert "3/3" in capsys.readouterr().err


def test_the_bars_eta_leaves_out_the_first_batchs_warm_up(capsys, monkeypatch):
    """process_video(progress=True)'s bar counted the first batch's time, mostly the model's warm-up, in its rate:
    once the second batch was drawn it said 11 minutes left for 40 s of work, and its running average took some ten
    batches to forget it (the command line's bar too). Each drawn ETA is compared with the rate the batches after
    the first ran at: the bar reads a clock this test moves (tqdm's), 4 s for the first batch and 0.15 s for each after
    it, where real sleeps compared two readings of a loaded machine's uneven clock (and slept 5 s)."""
    import re

    import tqdm.std

    from birefvid.api import _ProgressBar

    clock = [1000.0]
    monkeypatch.setattr(tqdm.std, "time", lambda: clock[0])

    def eta(drawn: str) -> int:
        h, m, s = re.findall(r"<(?:(\d+):)?(\d+):(\d\d),", drawn)[-1]
        return int(h or 0) * 3600 + int(m) * 60 + int(s)

    with _ProgressBar(True, None) as bar:
        control = bar.control()
        control.on_start(3000)
        clock[0] += 4.0  # the first inference's warm-up: an engine's compile, its thread pool started
        control.progress(8)
        capsys.readouterr()
        for done in range(16, 64, 8):
            clock[0] += 0.15  # above tqdm's 0.1 s between redraws: each batch is drawn
            control.progress(8)
            actually_left = (3000 - done) / (8 / 0.15)  # counting the warm-up, the second batch said 11 minutes
            drawn = capsys.readouterr().err
            assert abs(eta(drawn) - actually_left) <= 0.2 * actually_left, (done, eta(drawn), actually_left, drawn.split("\r")[-1])
