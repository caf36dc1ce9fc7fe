"""``birefvid.api.iter_masks``: a video's frames with their masks in Python, a batch at a time, no file written."""

from __future__ import annotations

import numpy as np
import pytest

from birefvid.api import iter_masks, process_video
from birefvid.errors import ConfigError, SourceError
from media import read_video
from process_fixtures import make_scene

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


SPIN_CHILD = r"""
import os, sys, time
os.sched_setaffinity(0, CPUS)  # before torch: OpenMP sizes its team from the affinity
import torch
from birefvid.api import iter_masks
from birefvid.models import BiRefNet
from birefvid.runtime import Segmenter
torch.manual_seed(0)
seg = Segmenter(module=BiRefNet("pvt_v2_b0"), resolution=64, device="cpu", precision="fp32", backend="torch")
frames = [f for f, _ in iter_masks(sys.argv[1], segmenter=seg, batch_size=1, end=0.1)]  # warm-up, and the frames
batch = torch.from_numpy(frames[0]).permute(2, 0, 1)[None]
t = time.process_time()
for _ in frames:
    seg.predict(batch, frame_size=False)  # on this, the main, thread: its OpenMP team the only one
on_main = time.process_time() - t
t = time.process_time()
assert len(list(iter_masks(sys.argv[1], segmenter=seg, batch_size=1, end=0.1))) == len(frames)
print(on_main, time.process_time() - t)
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_on_a_busy_cpu_iter_masks_costs_no_more_cpu_than_the_model(clip, tmp_path):
    """iter_masks ran the model on the caller's thread, where torch's OpenMP team was the only one and libgomp
    spun ~300k times at every wait; with a busy process a core, a frame cost ~5x the CPU of process's."""
    import os
    import subprocess
    import sys

    cpus = sorted(os.sched_getaffinity(0))[:2]
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    script = tmp_path / "child.py"
    script.write_text(SPIN_CHILD.replace("CPUS", repr(set(cpus))))
    busy = [subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {set(cpus)!r})\nwhile True: pass"])
            for _ in cpus]  # fmt: skip
    try:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        env.pop("OMP_NUM_THREADS", None)
        out = subprocess.run([sys.executable, str(script), str(clip.path)], capture_output=True, text=True, timeout=300, env=env)
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert out.returncode == 0, out.stderr
    on_main, in_loop = map(float, out.stdout.split())
    # the loop decodes, smooths and upsamples too, yet spun far less than the bare model on the main thread
    assert in_loop < 0.6 * on_main, (in_loop, on_main)
