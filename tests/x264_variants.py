"""A pytest plugin that makes every other libx264 encode of a run differ a little, to find tests that need two x264
encodes of the same pictures to be equal.

x264's AVX-512 code (PyAV 18.1.1's wheel, core 165) now and then gives other packets for the same pictures and
settings in one process, on one thread: the 64x48 foreground clip of test_process_also came out as other packets
in 2-23% of 300-1000 encodes (none without AVX-512, none as a fresh process's first encode); some of those decode
to the same pictures, others are a level off in half the frames (CI saw 1-2 levels). A test comparing two encodes
exactly failed about one CI run in 150. This
plugin turns that into a failure every run: each second x264 encoder a VideoFileSink opens runs without AVX-512,
whose pictures differ from the AVX-512 ones by a level or two.

    PYTHONPATH=tests python -m pytest -p x264_variants tests/test_process_also.py

Only on a CPU with AVX-512 (elsewhere it warns and changes nothing).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

# x264's --asm names of every SIMD set up to AVX2: what x264 picks on this CPU less its AVX-512 functions
WITHOUT_AVX512 = "asm=MMX2,SSE,SSE2,SSE3,SSSE3,SSE4.1,SSE4.2,SSE2Fast,LZCNT,POPCNT,AVX,FMA3,BMI1,BMI2,AVX2"


def _cpu_has_avx512() -> bool:
    """True where /proc/cpuinfo lists AVX-512 F and AVX2 (what WITHOUT_AVX512 asks for must be there)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512f" in flags and "avx2" in flags


def pytest_configure(config: pytest.Config) -> None:
    """Wrap the sink's encoder options so that every second libx264 encoder opens without AVX-512."""
    if not _cpu_has_avx512():
        config.issue_config_time_warning(pytest.PytestConfigWarning("x264_variants: this CPU has no AVX-512; x264 runs as always"), 2)
        return
    from birefvid.io import video_sink

    opened = itertools.count()
    real = video_sink._with_hdr10

    def options(spec, info):  # type: ignore[no-untyped-def]
        chosen = real(spec, info)
        if spec.codec == "libx264" and next(opened) % 2:
            chosen["x264-params"] = ":".join(p for p in (chosen.get("x264-params"), WITHOUT_AVX512) if p)
        return chosen

    video_sink._with_hdr10 = options
