"""Reading outputs back: alpha of RGBA videos (incl. VP9 side channel), grey masks and PNG folders."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from birefvid.errors import SourceError
from birefvid.frames import StreamInfo
from birefvid.io import open_sink
from birefvid.io.readback import iter_alpha

INFO = StreamInfo(width=64, height=48, time_base=Fraction(1, 25), average_rate=Fraction(25))


def _alphas():
    a = np.zeros((3, 48, 64), np.uint8)
    for i in range(3):
        a[i, 8:40, 10 + 10 * i : 40 + 10 * i] = 255
    return a


@pytest.mark.parametrize("name,kind,tol", [("a.webm", "alpha", 12), ("a.mkv", "alpha", 1), ("m.mkv", "mask", 0), ("pngs", "alpha", 0)])
def test_iter_alpha_reads_what_was_written(tmp_path, name, kind, tol):
    alphas = _alphas()
    with open_sink(tmp_path / name, kind=kind, info=INFO, audio=False) as sink:
        if kind == "alpha":
            rgba = np.concatenate([np.full((3, 48, 64, 3), 200, np.uint8), alphas[..., None]], axis=3)
            sink.write(rgba, [0, 1, 2])
        else:
            sink.write(alphas, [0, 1, 2])
    got = np.stack(list(iter_alpha(tmp_path / name)))
    assert got.shape == alphas.shape
    assert np.abs(got.astype(int) - alphas).max() <= tol


def test_iter_alpha_bad_input(tmp_path):
    bad = tmp_path / "x.mp4"
    bad.write_bytes(b"nope")
    with pytest.raises(SourceError, match="not a readable video"):
        list(iter_alpha(bad))
