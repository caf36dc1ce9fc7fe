"""Thread settings of the file pipeline's helpers: OpenCV without its worker pool while a CPU file job runs."""

from __future__ import annotations

import threading

import cv2
import pytest

from birefvid.runtime.priority import opencv_on_calling_threads


@pytest.fixture
def opencv_threads():
    before = cv2.getNumThreads()
    cv2.setNumThreads(3)
    yield 3
    cv2.setNumThreads(before)


def test_opencv_runs_on_the_calling_thread_inside_and_as_before_after(opencv_threads: int) -> None:
    with opencv_on_calling_threads():
        assert cv2.getNumThreads() == 1
    assert cv2.getNumThreads() == opencv_threads


def test_overlapping_jobs_keep_it_until_the_last_one_ends(opencv_threads: int) -> None:
    first_in, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def first() -> None:
        with opencv_on_calling_threads():
            first_in.set()
            release.wait(5)
            seen.append(cv2.getNumThreads())

    t = threading.Thread(target=first)
    t.start()
    assert first_in.wait(5)
    with opencv_on_calling_threads():  # a second job starts while the first runs, and ends first
        pass
    assert cv2.getNumThreads() == 1  # the first job is still running
    release.set()
    t.join(5)
    assert seen == [1]
    assert cv2.getNumThreads() == opencv_threads


def test_an_error_inside_still_restores_the_setting(opencv_threads: int) -> None:
    with pytest.raises(RuntimeError):
        with opencv_on_calling_threads():
            raise RuntimeError("stage failed")
    assert cv2.getNumThreads() == opencv_threads
