"""The file pipeline's stages: the model thread only segments, masks are smoothed at the model's
resolution and upsampled once, compositing runs on its own single-threaded stage (OpenCV included,
on a CPU), and a wide frame
(foreground estimated at a reduced size) still gives exact key and subject colours."""

from __future__ import annotations

import cv2
import pytest
import torch

from birefvid.api import process_video
from birefvid.temporal.smoothing import LookaheadSmoother
from media import read_video, x264_settings
from process_fixtures import decoded_times, interior, make_scene, max_err, red_key_segmenter, true_mask

RGB_TOL = 3  # x264 at crf 0: RGB <-> YUV rounding only (see test_process_outputs)


class SpySmoother(LookaheadSmoother):
    """The default flow-aligned look-ahead, recording the mask sizes and threads it is called with."""

    def __init__(self) -> None:
        super().__init__(window=2, warp=True, scene_cut_threshold=0.15)
        self.sizes: set[tuple[int, int]] = set()
        self.threads: set[str] = set()
        self.opencv_threads: set[int] = set()

    def push(self, alphas, images=None):
        import threading

        self.sizes.add(tuple(alphas.shape[2:]))
        self.threads.add(threading.current_thread().name)
        self.opencv_threads.add(cv2.getNumThreads())
        return super().push(alphas, images)


def test_masks_are_smoothed_at_the_model_size_beside_the_model(tmp_path, monkeypatch) -> None:
    size = (96, 72)  # the red-key segmenter runs at 64x64, so masks and frames differ in size
    src = make_scene(tmp_path / "in.mov", 9, size, with_audio=False)
    spy = SpySmoother()
    monkeypatch.setattr("birefvid.runtime.file_job.make_smoother", lambda kind, **opts: spy)
    threads_before = torch.get_num_threads()
    cv2.setNumThreads(2)  # OpenCV's own pool, as a caller of the API may have it
    report = process_video(src.path, tmp_path / "m.mkv", kind="mask", segmenter=red_key_segmenter(), batch_size=2)
    assert report["frames"] == 9
    assert spy.sizes == {(64, 64)}  # the inference size, not the frame's
    assert spy.threads == {"birefvid-compose"}  # not on the model's thread
    assert set(report["stage_seconds"]) >= {"decode", "segment", "compose", "encode"}
    assert torch.get_num_threads() == threads_before  # the compose stage's one thread stays its own
    assert spy.opencv_threads == {1}  # on a CPU the model has the cores: OpenCV runs on the calling thread
    assert cv2.getNumThreads() == 2  # and the caller's setting is back afterwards
    assert decoded_times(tmp_path / "m.mkv") == decoded_times(src.path)
    for i, m in enumerate(read_video(tmp_path / "m.mkv", "gray").images):  # each mask on its own frame
        assert m.shape == (size[1], size[0])
        fg, bg = interior(true_mask(i, size), margin=6)
        assert m[fg].min() >= 250 and m[bg].max() <= 5, f"frame {i}"


@pytest.mark.parametrize("kind", ["green", "alpha"])
def test_wide_frames_keep_exact_colours_where_alpha_is_0_or_1(tmp_path, kind: str) -> None:
    size = (1300, 240)  # long side > 960: foreground estimated at 1/3 of the size
    src = make_scene(tmp_path / "in.mov", 4, size, textured=True, with_audio=False)
    out = tmp_path / ("g.mp4" if kind == "green" else "a.mkv")
    report = process_video(src.path, out, kind=kind, segmenter=red_key_segmenter(), crf=0 if kind == "green" else None)
    assert report["frames"] == 4
    images = read_video(out, "rgb24" if kind == "green" else "rgba").images
    assert len(images) == 4
    for i, img in enumerate(images):
        fg, bg = interior(true_mask(i, size), margin=45)  # the 64-px model's edges span ~20 px here
        assert max_err(img[..., :3], src.frames[i], fg) <= RGB_TOL, f"frame {i}: subject changed"
        if kind == "green":
            assert max_err(img, (0, 255, 0), bg) <= RGB_TOL, f"frame {i}: background is not the key colour"
        else:
            assert max_err(img[..., 3], 0, bg) <= 1 and max_err(img[..., 3], 255, fg) <= 1, f"frame {i}: alpha"


def test_on_a_small_cpu_the_codecs_run_on_one_thread_each(tmp_path, monkeypatch) -> None:
    """The model keeps a small CPU's cores busy: x264's frame threads and the decoder's only add CPU."""
    import birefvid.runtime.file_job as file_job

    src = make_scene(tmp_path / "in.mov", 6, (96, 72), with_audio=False)
    decoder_threads: list[object] = []
    real_open_source = file_job.open_source

    def spy_open_source(*args, **kwargs):
        decoder_threads.append(kwargs.get("threads"))
        return real_open_source(*args, **kwargs)

    monkeypatch.setattr(file_job, "open_source", spy_open_source)
    for cores, out in ((2, tmp_path / "small.mp4"), (16, tmp_path / "big.mp4")):
        monkeypatch.setattr("birefvid.runtime.priority.usable_cores", lambda cores=cores: cores)
        report = process_video(src.path, out, kind="green", segmenter=red_key_segmenter())
        assert report["frames"] == 6
    assert decoder_threads == [1, None]
    assert " threads=1 " in x264_settings(tmp_path / "small.mp4")
    assert " threads=1 " not in x264_settings(tmp_path / "big.mp4")  # x264's own choice for this machine


def test_codec_threads_rule() -> None:
    from birefvid.runtime.priority import codec_threads

    assert codec_threads("cpu", cores=2) == 1
    assert codec_threads("cpu", cores=4) == 1
    assert codec_threads("cpu", cores=16) is None  # a faster model: the codecs keep their threads
    assert codec_threads("cuda", cores=2) is None
