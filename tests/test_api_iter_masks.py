"""``birefvid.api.iter_masks``: a video's frames with their masks in Python, a batch at a time, no file written."""

from __future__ import annotations

import numpy as np
import pytest

from birefvid.api import iter_masks, process_video
from birefvid.errors import ConfigError, SourceError
from birefvid.runtime import Segmenter
from media import read_video
from process_fixtures import OverflowsInHalf, make_scene

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def seg(b0_segmenter):
    return b0_segmenter


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("clip") / "in.mov", 7, (64, 48), textured=True, with_audio=False)  # lossless


def test_every_frame_comes_with_its_own_mask(seg, clip):
    pairs = list(iter_masks(clip.path, segmenter=seg, batch_size=3))  # 3 + 3 + a last batch of 1
    assert len(pairs) == 7
    for (frame, alpha), want in zip(pairs, clip.frames):
        np.testing.assert_array_equal(frame, want)
        assert alpha.shape == (48, 64) and alpha.dtype == np.float32
        np.testing.assert_allclose(alpha, seg(frame)[0], atol=1e-6)


@pytest.mark.parametrize("smooth", ["none", "lookahead"])
def test_masks_are_process_videos_masks(seg, clip, tmp_path, smooth):
    """Smoothers hold frames back (lookahead: two); each mask still comes with its own frame, as in the file."""
    process_video(clip.path, tmp_path / "mask.mkv", segmenter=seg, kind="mask", smooth=smooth)
    written = read_video(tmp_path / "mask.mkv", "gray").images
    pairs = list(iter_masks(clip.path, segmenter=seg, smooth=smooth, batch_size=2))
    assert len(pairs) == len(written) == 7
    for (frame, alpha), want_frame, want_mask in zip(pairs, clip.frames, written):
        np.testing.assert_array_equal(frame, want_frame)
        assert np.abs(np.rint(alpha * 255) - want_mask.astype(np.float64)).max() <= 1


def test_start_end_and_max_size_as_process_video(seg, clip):
    pairs = list(iter_masks(clip.path, segmenter=seg, start=0.08, end=0.2, max_size=32))  # 25 fps: frames 2, 3, 4
    assert len(pairs) == 3
    assert all(frame.shape == (24, 32, 3) and alpha.shape == (24, 32) for frame, alpha in pairs)


def test_arguments_are_checked_before_the_first_frame(tmp_path):
    with pytest.raises(ConfigError, match="unknown smooth 'median'"):
        iter_masks(tmp_path / "any.mp4", smooth="median")
    with pytest.raises(ConfigError, match="end .* must come after start"):
        iter_masks(tmp_path / "any.mp4", start=2, end=1)
    with pytest.raises(TypeError, match="iter_masks\\(\\) got an unexpected keyword argument 'modl'; did you mean 'model'"):
        iter_masks(tmp_path / "any.mp4", modl="tiny")
    masks = iter_masks(tmp_path / "missing.mp4", model="tiny")
    with pytest.raises(SourceError, match="missing.mp4"):
        next(masks)


def _open_handles(path) -> int:
    """How many of this process's file descriptors point at ``path`` (Linux)."""
    import os

    fds = "/proc/self/fd"
    target = os.path.realpath(path)
    count = 0
    for fd in os.listdir(fds):
        try:
            count += os.readlink(f"{fds}/{fd}") == target
        except OSError:  # closed since listing
            pass
    return count


def test_leaving_the_loop_early_closes_the_file(seg, clip):
    if not __import__("os").path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd (Linux)")
    masks = iter_masks(clip.path, segmenter=seg, batch_size=2)
    next(masks)
    assert _open_handles(clip.path) == 1
    masks.close()  # what `break` out of the loop or a KeyboardInterrupt in it does
    assert _open_handles(clip.path) == 0


def test_a_sources_own_alpha_hides_the_subject_there(tmp_path):
    """A PNG sequence whose right part is transparent over the red square: process's outputs leave it
    out (the matte times the source's alpha), and so do iter_masks' masks, which gave it 1 there."""
    import cv2
    from process_fixtures import interior, red_key_segmenter, scene_frame, true_mask

    size, clear_from = (64, 48), 18
    (tmp_path / "seq").mkdir()
    for i in range(2):
        rgba = np.dstack([scene_frame(i, size), np.full(size[::-1], 255, np.uint8)])
        rgba[:, clear_from:, 3] = 0
        assert cv2.imwrite(str(tmp_path / "seq" / f"f_{i}.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    masks = [mask for _, mask in iter_masks(tmp_path / "seq", segmenter=red_key_segmenter())]
    for i, mask in enumerate(masks):
        fg, _ = interior(true_mask(i, size))
        assert mask[:, clear_from:][fg[:, clear_from:]].max() == 0
        assert mask[:, : clear_from - 2][fg[:, : clear_from - 2]].min() > 0.98


def test_the_model_runs_on_a_thread_of_its_own_that_ends_with_the_loop(seg, clip, monkeypatch):
    """On the caller's thread, where torch's OpenMP team was the only one in the process, libgomp spun at every wait:
    on a busy 2-core CPU a frame cost 5-10x the CPU it costs on process's model thread (scripts/bench_api.py prints
    the figures; a timed test would be a flaky one). iter_masks now runs the model on its own thread, as process does,
    and that thread ends with the loop, a loop left early included."""
    import threading

    where = []
    real_predict = type(seg).predict

    def predict(self, *args, **kwargs):
        where.append(threading.current_thread().name)
        return real_predict(self, *args, **kwargs)

    monkeypatch.setattr(type(seg), "predict", predict)
    assert len(list(iter_masks(clip.path, segmenter=seg, batch_size=3))) == 7
    assert where and all(name.startswith("birefvid-segment") for name in where), where
    loop = iter_masks(clip.path, segmenter=seg, batch_size=2)
    next(loop)
    loop.close()  # a loop left early (break, an exception in the caller's code)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("birefvid-segment")]


def test_a_warning_from_the_model_names_the_loops_line(clip):
    """The model's thread has no caller's line on its stack: the fp32-recompute warning named
    concurrent/futures/thread.py:58, where on the caller's thread it named the loop's line, as Segmenter's do."""
    seg = Segmenter(module=OverflowsInHalf(), resolution=64, device="cpu", precision="bf16", backend="torch")
    with pytest.warns(RuntimeWarning, match="recomputing this batch in fp32") as caught:
        pairs = list(iter_masks(clip.path, segmenter=seg, batch_size=7))
    assert len(pairs) == 7
    assert [w.filename for w in caught] == [__file__]
