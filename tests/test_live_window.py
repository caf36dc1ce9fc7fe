"""The window sink on a real X server (Xvfb): what it shows is checked on a screenshot of the screen.

Each on-screen test finds the window by its title (xwininfo), grabs the root window (ImageMagick's
``import``) and compares the window's pixels with the picture that was sent. Closing is done the
way a user does it: a WM_DELETE_WINDOW message (what a window manager sends for the close button)
and the Esc key (xdotool).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torchvision.ops  # noqa: F401 - see below

# torchvision.ops loads triton, which carries its own LLVM; loaded *after* SDL has opened an X
# window (Mesa's llvmpipe brings another LLVM) it crashes the process. birefvid live imports the
# model before opening sinks, so it never meets this; the test process must do the same, or a
# later test that first imports the model segfaults.

from birefvid.errors import SinkError
from birefvid.io.live_base import CHECKER_DARK, CHECKER_LIGHT, CHECKER_SQUARE, checkerboard
from birefvid.io.window_sink import WindowSink, displayable
from live_e2e_tools import xvfb as start_xvfb
from system_tools import need_binary, need_module

REPO_ROOT = Path(__file__).resolve().parents[1]
TITLE = "birefvid-window-test"
W, H = 160, 120


def _square_picture(background: tuple[int, int, int], square: tuple[int, int, int], at: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) rgb of one colour with a 40x40 square of another whose top-left corner is ``at`` (x, y)."""
    picture = np.empty((H, W, 3), np.uint8)
    picture[:] = background
    picture[at[1] : at[1] + 40, at[0] : at[0] + 40] = square
    return picture


RED_ON_BLUE = _square_picture((0, 0, 255), (255, 0, 0), (40, 30))
YELLOW_ON_GREEN = _square_picture((0, 160, 0), (255, 255, 0), (100, 70))


# ---------------------------------------------------------------- the X server and what is on it


@pytest.fixture(scope="module")
def xvfb() -> Iterator[str]:
    """A private Xvfb (640x480, 24 bit) on a free display number it picks itself; its name, e.g. ":3"."""
    with start_xvfb((640, 480)) as display:
        yield display


@pytest.fixture
def display(xvfb: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """DISPLAY pointing at the test's Xvfb (and nothing else SDL could pick) for one test."""
    need_module("pygame", "'birefvid[window]'")
    monkeypatch.setenv("DISPLAY", xvfb)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    return xvfb


@pytest.fixture
def window(display: str) -> Iterator[WindowSink]:
    """An open WindowSink titled TITLE; after the test it is closed and pygame's display must be shut."""
    sink = WindowSink(width=W, height=H, title=TITLE)
    yield sink
    sink.close()
    import pygame

    assert not pygame.display.get_init(), "close() left pygame's display running"


def _geometry(display: str) -> tuple[int, int, int, int] | None:
    """(x, y, width, height) of the window titled TITLE on ``display``, or None when there is none."""
    xwininfo = need_binary("xwininfo", "x11-utils")
    result = subprocess.run(
        [xwininfo, "-display", display, "-name", TITLE], capture_output=True, text=True, timeout=20
    )
    if result.returncode != 0:
        return None
    keys = ("Absolute upper-left X", "Absolute upper-left Y", "Width", "Height")
    x, y, w, h = (int(re.search(rf"{key}:\s+(-?\d+)", result.stdout).group(1)) for key in keys)
    return x, y, w, h


def _window_id(display: str) -> str:
    """The X id (hex) of the window titled TITLE, for xdotool."""
    xwininfo = need_binary("xwininfo", "x11-utils")
    out = subprocess.run([xwininfo, "-display", display, "-name", TITLE], capture_output=True, text=True, timeout=20)
    match = re.search(r"Window id: (0x[0-9a-f]+)", out.stdout)
    assert match, f"no window titled {TITLE!r}: {out.stderr.strip()}"
    return match.group(1)


def _screenshot(display: str, tmp_path: Path) -> np.ndarray:
    """The whole screen as (480, 640, 3) rgb, grabbed from the X server (not from pygame)."""
    grab = need_binary("import", "imagemagick")
    target = tmp_path / "screen.png"
    subprocess.run([grab, "-display", display, "-window", "root", f"png:{target}"], check=True, timeout=30)
    shot = cv2.imread(str(target), cv2.IMREAD_COLOR)
    assert shot is not None and shot.shape == (480, 640, 3), f"unreadable screenshot {target}"
    return cv2.cvtColor(shot, cv2.COLOR_BGR2RGB)


def _window_pixels(display: str, tmp_path: Path) -> np.ndarray:
    """What the screen shows inside the window titled TITLE."""
    where = _geometry(display)
    assert where is not None, f"no window titled {TITLE!r} on {display}"
    x, y, w, h = where
    return _screenshot(display, tmp_path)[y : y + h, x : x + w]


def _shows(
    sink: WindowSink, picture: np.ndarray, expected: Callable[[np.ndarray], bool], display: str, tmp_path: Path
) -> np.ndarray:
    """Send ``picture`` until the window shows what ``expected(pixels)`` accepts (at most 10 s); the pixels."""
    deadline = time.monotonic() + 10
    while True:
        sink.send(picture, 0.0)
        pixels = _window_pixels(display, tmp_path)
        if expected(pixels) or time.monotonic() > deadline:
            return pixels
        time.sleep(0.1)


def _equal_to(target: np.ndarray) -> Callable[[np.ndarray], bool]:
    """A check for _shows: the window's pixels are exactly ``target``."""
    return lambda pixels: pixels.shape == target.shape and np.array_equal(pixels, target)


def _send_wm_delete_window(display: str, window_id: int) -> None:
    """Ask the window to close as a window manager does for its close button (WM_DELETE_WINDOW), via libX11."""
    path = ctypes.util.find_library("X11")
    if path is None:
        pytest.skip("libX11 is not available to send WM_DELETE_WINDOW")
    x11 = ctypes.CDLL(path)
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XInternAtom.restype = ctypes.c_ulong
    x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x11.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    x11.XFlush.argtypes = x11.XCloseDisplay.argtypes = [ctypes.c_void_p]

    class ClientMessage(ctypes.Structure):  # XClientMessageEvent, padded to sizeof(XEvent)
        _fields_ = [
            ("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
            ("display", ctypes.c_void_p), ("window", ctypes.c_ulong), ("message_type", ctypes.c_ulong),
            ("format", ctypes.c_int), ("data", ctypes.c_long * 5), ("pad", ctypes.c_long * 12),
        ]

    connection = x11.XOpenDisplay(display.encode())
    assert connection, f"cannot connect to {display} with libX11"
    try:
        event = ClientMessage(type=33, window=window_id, format=32)  # 33 = ClientMessage
        event.message_type = x11.XInternAtom(connection, b"WM_PROTOCOLS", 0)
        event.data[0] = x11.XInternAtom(connection, b"WM_DELETE_WINDOW", 0)
        event.data[1] = 0  # CurrentTime
        assert x11.XSendEvent(connection, window_id, 0, 0, ctypes.byref(event)), "XSendEvent failed"
        x11.XFlush(connection)
    finally:
        x11.XCloseDisplay(connection)


def _wait_closed(sink: WindowSink, display: str) -> None:
    """Keep sending (that is when the sink handles events) until it notices the close, at most 10 s."""
    deadline = time.monotonic() + 10
    while not sink.closed_by_user and time.monotonic() < deadline:
        sink.send(RED_ON_BLUE, 0.0)
        time.sleep(0.05)


# ---------------------------------------------------------------- what the window shows


def test_window_shows_rgb_pictures_as_sent_and_follows_new_ones(window, display, tmp_path):
    assert window.holds_last and window.accepts == {"rgb", "rgba", "gray"}
    pixels = _shows(window, RED_ON_BLUE, _equal_to(RED_ON_BLUE), display, tmp_path)
    assert pixels.shape == RED_ON_BLUE.shape, f"window is {pixels.shape[1]}x{pixels.shape[0]}, not {W}x{H}"
    red = np.all(pixels == (255, 0, 0), axis=-1)
    ys, xs = np.nonzero(red)
    assert red.sum() == 40 * 40 and (xs.min(), ys.min()) == (40, 30), "the red square is not where it was sent"
    assert np.array_equal(pixels, RED_ON_BLUE)

    pixels = _shows(window, YELLOW_ON_GREEN, _equal_to(YELLOW_ON_GREEN), display, tmp_path)
    assert np.array_equal(pixels, YELLOW_ON_GREEN), "the window did not change to the second picture"
    assert not np.any(np.all(pixels == (255, 0, 0), axis=-1)), "the first picture is still visible"


def test_window_shows_gray_pictures_as_gray(window, display, tmp_path):
    gray = np.full((H, W), 90, np.uint8)
    gray[30:70, 40:80] = 170
    expected = np.repeat(gray[:, :, None], 3, axis=2)
    pixels = _shows(window, gray, _equal_to(expected), display, tmp_path)
    assert np.array_equal(pixels, expected)
    assert np.all(pixels[50, 60] == 170) and np.all(pixels[5, 5] == 90)


def test_window_shows_rgba_over_a_checkerboard(window, display, tmp_path):
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[..., :3] = (255, 0, 0)  # red everywhere, but only visible where alpha says so
    rgba[:, W // 2 :, 3] = 255  # right half opaque
    rgba[:40, : W // 2, 3] = 128  # top-left strip half transparent; the rest of the left half transparent
    pixels = _shows(window, rgba, _equal_to(displayable(rgba)), display, tmp_path)
    assert np.array_equal(pixels, displayable(rgba))
    assert np.all(pixels[:, W // 2 :] == (255, 0, 0)), "the opaque half is not the picture's colour"
    see_through = pixels[40:, : W // 2]
    assert set(np.unique(see_through).tolist()) == {CHECKER_DARK, CHECKER_LIGHT}, "transparent part is no checkerboard"
    assert not np.array_equal(see_through[0, 0], see_through[0, CHECKER_SQUARE]), "neighbouring squares look the same"
    r, g, _ = pixels[10, 10].astype(int)
    assert 100 < r - g < 160, f"half-transparent red should be half red over the grey, got {pixels[10, 10]}"


def test_window_scales_pictures_to_a_resized_window_keeping_their_shape(window, display, tmp_path):
    xdotool = need_binary("xdotool", "xdotool")
    _shows(window, RED_ON_BLUE, _equal_to(RED_ON_BLUE), display, tmp_path)
    window_id = _window_id(display)

    subprocess.run([xdotool, "windowsize", window_id, str(2 * W), str(2 * H)], check=True, timeout=20,
                   env={**os.environ, "DISPLAY": display})
    twice = lambda pixels: pixels.shape[:2] == (2 * H, 2 * W) and np.all(pixels[2 * 50, 2 * 60] == (255, 0, 0))
    pixels = _shows(window, RED_ON_BLUE, twice, display, tmp_path)
    assert pixels.shape[:2] == (2 * H, 2 * W), "the window did not take the new size"
    red = np.all(pixels == (255, 0, 0), axis=-1)
    ys, xs = np.nonzero(red)
    assert abs(red.sum() - 80 * 80) < 80 * 4, f"the 40x40 square should fill about 80x80 at 2x, got {red.sum()} px"
    assert abs(xs.min() - 80) <= 1 and abs(ys.min() - 60) <= 1, "the scaled square moved"

    subprocess.run([xdotool, "windowsize", window_id, str(2 * W), str(H)], check=True, timeout=20,
                   env={**os.environ, "DISPLAY": display})
    bars = lambda pixels: pixels.shape[:2] == (H, 2 * W) and np.all(pixels[:, : W // 2] == 0)
    pixels = _shows(window, RED_ON_BLUE, bars, display, tmp_path)
    assert pixels.shape[:2] == (H, 2 * W)
    bars_shown = np.all(pixels[:, : W // 2] == 0) and np.all(pixels[:, -W // 2 :] == 0)
    assert bars_shown, "no black bars beside a too-wide window"
    middle = pixels[:, W // 2 : W // 2 + W].astype(int)
    assert np.abs(middle - RED_ON_BLUE).max() <= 2, "the picture is not shown unscaled between the bars"


def test_non_square_pixels_are_shown_as_wide_as_they_are_meant_to_be(display, tmp_path):
    """A D1 camera's 12:11 pixels (here 4:3, to keep sizes whole): the window showed them square, squeezed."""
    from fractions import Fraction

    with WindowSink(width=W, height=H, title=TITLE, sample_aspect_ratio=Fraction(4, 3)) as sink:
        wide = lambda pixels: pixels.shape[:2] == (H, W * 4 // 3) and np.all(pixels[50, 80] == (255, 0, 0))
        pixels = _shows(sink, RED_ON_BLUE, wide, display, tmp_path)
    assert pixels.shape[:2] == (H, W * 4 // 3), "the window is not as wide as the picture is meant to be"
    red = np.all(pixels == (255, 0, 0), axis=-1)
    ys, xs = np.nonzero(red)
    assert abs((xs.max() - xs.min() + 1) - 53) <= 2 and ys.max() - ys.min() + 1 == 40, "the square is not 4:3 wider"


def test_a_mirrored_window_shows_the_picture_flipped_left_right(display, tmp_path):
    """Your self-view, as call apps show it: the red square sent at the left is shown at the right."""
    mirrored = np.ascontiguousarray(RED_ON_BLUE[:, ::-1])
    with WindowSink(width=W, height=H, title=TITLE, mirror=True) as sink:
        pixels = _shows(sink, RED_ON_BLUE, _equal_to(mirrored), display, tmp_path)
    assert np.array_equal(pixels, mirrored), "the window does not show the picture mirrored"


# ---------------------------------------------------------------- closing


def test_closing_the_window_sets_closed_by_user_and_removes_it(window, display, tmp_path):
    _shows(window, RED_ON_BLUE, _equal_to(RED_ON_BLUE), display, tmp_path)
    assert not window.closed_by_user
    _send_wm_delete_window(display, int(_window_id(display), 16))
    _wait_closed(window, display)
    assert window.closed_by_user, "a WM_DELETE_WINDOW (the close button) did not set closed_by_user"
    assert _geometry(display) is None, "the window is still on screen after the user closed it"
    window.send(RED_ON_BLUE, 0.0)  # the runner may send once more before it sees the flag: no error


def test_escape_key_closes_the_window(window, display, tmp_path):
    xdotool = need_binary("xdotool", "xdotool")
    _shows(window, RED_ON_BLUE, _equal_to(RED_ON_BLUE), display, tmp_path)
    subprocess.run([xdotool, "key", "--window", _window_id(display), "Escape"], check=True, timeout=20,
                   env={**os.environ, "DISPLAY": display})
    _wait_closed(window, display)
    assert window.closed_by_user, "Esc in the window did not set closed_by_user"


def test_close_is_idempotent_and_send_after_close_is_refused(display):
    import pygame

    sink = WindowSink(width=W, height=H, title=TITLE)
    sink.send(RED_ON_BLUE, 0.0)
    sink.close()
    sink.close()
    sink.abort()
    assert not pygame.display.get_init()
    assert _geometry(display) is None, "the window outlived close()"
    with pytest.raises(ValueError, match="after close"):
        sink.send(RED_ON_BLUE, 0.0)


def test_one_window_at_a_time_and_a_new_one_after_close(window, display):
    with pytest.raises(SinkError, match="only one window"):
        WindowSink(width=W, height=H)
    window.close()
    again = WindowSink(width=W, height=H, title=TITLE)
    try:
        again.send(RED_ON_BLUE, 0.0)
        assert not again.closed_by_user
    finally:
        again.close()


# ---------------------------------------------------------------- when there is no window to open


def test_no_display_is_one_clear_sink_error(monkeypatch):
    need_module("pygame", "'birefvid[window]'")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SinkError) as caught:
        WindowSink(width=W, height=H)
    message = str(caught.value)
    assert "\n" not in message and "$DISPLAY is not set" in message and "the sink 'http://127.0.0.1:8080'" in message
    import pygame

    assert not pygame.display.get_init(), "a failed open left pygame's display running"


def test_unreachable_display_is_one_clear_sink_error(monkeypatch):
    need_module("pygame", "'birefvid[window]'")
    taken = lambda n: Path(f"/tmp/.X11-unix/X{n}").exists() or Path(f"/tmp/.X{n}-lock").exists()
    free = next(n for n in range(250, 400) if not taken(n))
    monkeypatch.setenv("DISPLAY", f":{free}")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("SDL_VIDEODRIVER", raising=False)
    with pytest.raises(SinkError) as caught:
        WindowSink(width=W, height=H)
    message = str(caught.value)
    assert "\n" not in message and f"':{free}'" in message and "the sink 'http://127.0.0.1:8080'" in message
    assert "SDL_VIDEODRIVER" not in os.environ, "the sink left its temporary SDL driver choice behind"


def test_without_pygame_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)  # makes `import pygame` raise ImportError
    with pytest.raises(SinkError, match=re.escape("pip install 'birefvid[window]'")):
        WindowSink(width=W, height=H)


def test_pygame_greeting_is_hidden_and_no_display_error_is_all_that_is_printed():
    need_module("pygame", "'birefvid[window]'")
    unset = ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER", "PYGAME_HIDE_SUPPORT_PROMPT")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    code = (
        "from birefvid.io.window_sink import WindowSink\n"
        "from birefvid.errors import SinkError\n"
        "try:\n    WindowSink(width=8, height=8)\nexcept SinkError as e:\n    print('SinkError:', e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("SinkError: no display") and result.stdout.count("\n") == 1, result.stdout
    assert "pygame community" not in result.stdout, f"greeting shown: {result.stdout!r}"


# ---------------------------------------------------------------- the picture a screen gets (no display needed)


def test_displayable_keeps_rgb_repeats_gray_and_puts_rgba_over_a_checkerboard():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(displayable(rgb), rgb)
    gray = rgb[..., 0]
    shown = displayable(gray)
    assert shown.shape == (5, 7, 3) and all(np.array_equal(shown[..., c], gray) for c in range(3))

    rgba = np.zeros((2 * CHECKER_SQUARE, 2 * CHECKER_SQUARE, 4), np.uint8)
    rgba[..., :3] = (10, 200, 30)
    rgba[0, 0, 3] = 255
    rgba[1, 1, 3] = 128
    shown = displayable(rgba)
    assert tuple(shown[0, 0]) == (10, 200, 30), "opaque pixels must keep their colour"
    dark, light = (CHECKER_DARK,) * 3, (CHECKER_LIGHT,) * 3
    assert tuple(shown[CHECKER_SQUARE, 0]) == dark and tuple(shown[0, CHECKER_SQUARE]) == dark
    assert tuple(shown[CHECKER_SQUARE, CHECKER_SQUARE]) == light and tuple(shown[2, 2]) == light
    half = (np.array([10, 200, 30]) * 128 + CHECKER_LIGHT * 127 + 127) // 255
    assert tuple(shown[1, 1]) == tuple(half), "half alpha must mix colour and checkerboard"
    assert np.array_equal(checkerboard(3, 40)[0, CHECKER_SQUARE], [CHECKER_DARK] * 3)


def test_displayable_refuses_what_is_not_a_picture():
    with pytest.raises(ValueError, match="uint8"):
        displayable(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        displayable(np.zeros((4, 4, 2), np.uint8))


# ---------------------------------------------------------------- during the model's warm-up


def test_closing_the_window_during_the_warm_up_ends_the_run_at_once(display, tmp_path, monkeypatch):
    """A first run exports the model for 20-40 s with the window already open: its close button was
    not handled until the export ended, and then one picture was shown. It ends the run at once now,
    with nothing shown and no empty recording."""
    import threading

    from birefvid import exiting
    from birefvid.api import build_live_job, run_live
    from process_fixtures import red_key_segmenter
    from test_live_runner import SlowRedKey, write_scene

    monkeypatch.setattr(exiting, "_abandoned", [])  # the warm-up thread is left sleeping, as for Ctrl-C
    clip = write_scene(tmp_path / "cam.mkv", 48)
    rec = tmp_path / "rec.mp4"
    job = build_live_job(str(clip), ["window", str(rec)], effect="blur", realtime=True, loop=True, resolution=64)

    def close_when_shown() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            out = subprocess.run(["xwininfo", "-display", display, "-name", "birefvid"], capture_output=True, text=True)
            found = re.search(r"Window id: (0x[0-9a-f]+)", out.stdout)
            if found:
                _send_wm_delete_window(display, int(found.group(1), 16))
                return
            time.sleep(0.1)

    need_binary("xwininfo", "x11-utils")
    closer = threading.Thread(target=close_when_shown, daemon=True)
    # The warm-up lasts until the run has returned (60 s at most): a run that waited for it takes 60 s, one that ends
    # at once 1-4 s here (loaded or not), so the bound is far from both (it was 5 s against an 8 s warm-up).
    warm_up_over = threading.Event()
    started = time.monotonic()
    try:
        report = run_live(job, segmenter=red_key_segmenter(SlowRedKey(60.0, first_only=True, release=warm_up_over)),
                          on_effects=lambda _: closer.start())  # fmt: skip
    finally:
        warm_up_over.set()
    assert time.monotonic() - started < 30.0, "the run waited for the warm-up to end"
    assert report["ended_by"] == "window closed" and report["frames_shown"] == 0
    assert not rec.exists() and not list(tmp_path.glob(".rec*")), "an empty recording was left"
    assert _geometry(display) is None
