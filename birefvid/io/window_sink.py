"""Show live pictures in a desktop window (pygame/SDL2, the optional ``birefvid[window]`` extra).

opencv-python-headless has no GUI, so the preview window comes from pygame. SDL's display state
is process-global: one window sink may be open at a time, and it should be fed from one thread
(on macOS, the main thread). Pictures are scaled to fit the window, keeping their aspect ratio;
rgba is shown over a checkerboard so transparency is visible, gray as gray. Closing the window,
or pressing Esc or q in it, sets ``closed_by_user`` and the runner stops; b, r, g and n switch the
run's effect (blur, replace, green, none, overlay). With ``mirror`` the picture is shown flipped left-right,
as a call app shows your self-view; what is sent or recorded is never flipped.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar, Optional

import numpy as np

from birefvid.errors import ConfigError, SinkError, sink_named
from birefvid.io.live_base import LiveSink, over_checkerboard, picture_kind, square_pixel_size

if TYPE_CHECKING:
    from birefvid.runtime.live_effects import EffectSwitch

log = logging.getLogger(__name__)

_NO_PYGAME = "the window sink needs pygame: pip install 'birefvid[window]'"
_HEADLESS_DRIVERS = ("offscreen", "dummy")


def _browser_hint() -> str:
    return f"use {sink_named('http://127.0.0.1:8080')} for a browser preview"


def displayable(picture: np.ndarray) -> np.ndarray:
    """The (H, W, 3) uint8 rgb a screen can show: rgb as is, gray repeated, rgba over a checkerboard."""
    kind = picture_kind(picture)
    if kind == "rgb":
        return np.ascontiguousarray(picture)
    if kind == "gray":
        return np.repeat(picture[:, :, None], 3, axis=2)
    return over_checkerboard(picture)


def _fit(size: tuple[int, int], bounds: tuple[int, int]) -> tuple[int, int]:
    """Largest (w, h) with ``size``'s aspect ratio inside ``bounds`` (at least 1x1)."""
    scale = min(bounds[0] / size[0], bounds[1] / size[1])
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _import_pygame() -> Any:
    """pygame, imported quietly (no greeting on stdout); SinkError naming the extra when it is absent."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame
    except ImportError as e:
        raise SinkError(_NO_PYGAME) from e
    return pygame


def _init_display(pygame: Any) -> None:
    """Start SDL's video subsystem on a real display, or raise SinkError saying why there is none."""
    requested = os.environ.get("SDL_VIDEODRIVER", "")
    display = os.environ.get("DISPLAY", "")
    x11_only = not sys.platform.startswith(("win", "darwin")) and not os.environ.get("WAYLAND_DISPLAY")
    if x11_only and not requested and not display:
        raise SinkError(f"no display to open a window on ($DISPLAY is not set); {_browser_hint()}")
    # With only X11 around, ask SDL for x11 alone: its fallbacks would print Wayland noise on
    # stderr and then open an invisible "offscreen" window instead of failing.
    forced = x11_only and not requested
    if forced:
        os.environ["SDL_VIDEODRIVER"] = "x11"
    try:
        pygame.display.init()
    except pygame.error as e:
        where = f"display {display!r}" if display else "this desktop"
        raise SinkError(f"cannot open a window on {where} (SDL: {e}); {_browser_hint()}") from e
    finally:
        if forced:
            del os.environ["SDL_VIDEODRIVER"]
    driver = pygame.display.get_driver()
    if driver in _HEADLESS_DRIVERS and driver != requested:
        pygame.display.quit()
        raise SinkError(f"no display to open a window on (SDL found only its {driver} driver); {_browser_hint()}")


class WindowSink(LiveSink):
    """A resizable desktop window showing each picture, scaled to fit; ``closed_by_user`` once closed."""

    accepts = frozenset({"rgb", "rgba", "gray"})
    holds_last = True
    needs_main_thread = True  # SDL windows are created, fed and closed on one thread

    _open: ClassVar[Optional["WindowSink"]] = None
    _open_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self, *, width: int, height: int, title: str = "birefvid", sample_aspect_ratio: Optional[Fraction] = None, mirror: bool = False,
    ) -> None:
        """Open the window at the stream's size (shrunk to fit the screen); SinkError when it cannot.

        ``sample_aspect_ratio``: the pictures' pixel shape when not square (a D1 camera's 12:11): they
        are shown as wide as they are meant to be, not squeezed. ``mirror``: shown flipped left-right,
        as a mirror (and a call app's self-view) shows you."""
        super().__init__()
        self.mirror = mirror
        if width <= 0 or height <= 0:
            raise ValueError(f"a window needs a positive size, got {width}x{height}")
        self.width, self.height, self.title = width, height, title
        self.sample_aspect_ratio = sample_aspect_ratio
        self._closed_by_user = False
        self._effects: Optional["EffectSwitch"] = None
        pygame = _import_pygame()
        with WindowSink._open_lock:
            if WindowSink._open is not None:
                raise SinkError("only one window sink can be open at a time (pygame has one display per process)")
            _init_display(pygame)
            try:
                size = square_pixel_size(width, height, sample_aspect_ratio)
                desktops = pygame.display.get_desktop_sizes()
                if desktops:
                    bounds = (int(desktops[0][0] * 0.9), int(desktops[0][1] * 0.9))
                    if size[0] > bounds[0] or size[1] > bounds[1]:
                        size = _fit(size, bounds)
                pygame.display.set_mode(size, pygame.RESIZABLE)
                pygame.display.set_caption(title)
            except pygame.error as e:
                pygame.display.quit()
                raise SinkError(f"cannot open a {width}x{height} window (SDL: {e}); {_browser_hint()}") from e
            WindowSink._open = self
        self._pygame = pygame

    @property
    def name(self) -> str:
        return "window"

    def attach_effects(self, effects: "EffectSwitch") -> None:
        """Keys b, r, g, n and o switch the effect (the title stays the run's: scripts find the window by it)."""
        if effects.available:
            self._effects = effects

    def _switch(self, key: str) -> None:
        from birefvid.runtime.live_effects import KEYS

        if self._effects is None or key not in KEYS:
            return
        try:
            self._effects.select(KEYS[key], by="window")
        except ConfigError as e:
            log.warning("key %s: %s", key, e)

    @property
    def closed_by_user(self) -> bool:
        """True once the user closed the window (or pressed Esc or q in it): the runner should stop."""
        return self._closed_by_user

    def pump(self) -> None:
        """Handle the window's events while no picture comes (the model's warm-up, a first export of 20-40 s):
        the window answers its desktop, and a close or Esc/q there is seen at once, not after the warm-up."""
        with self._lock:
            if not self._closed_by_user and not self._finish_once.done:
                self._pump()

    def _pump(self) -> None:
        """Handle pending window events so the window stays responsive; notice when it was closed."""
        pygame = self._pygame
        for event in pygame.event.get():
            closing_key = event.type == pygame.KEYDOWN and event.key in (pygame.K_ESCAPE, pygame.K_q)
            if event.type == pygame.QUIT or closing_key:
                self._closed_by_user = True
            elif event.type == pygame.KEYDOWN:
                self._switch(event.unicode.lower())
        if self._closed_by_user:
            pygame.display.quit()  # the window goes away now, not when the runner gets round to close()

    def _send(self, picture: np.ndarray, t: float) -> None:
        if self._closed_by_user:
            return
        self._pump()
        if self._closed_by_user:
            return
        pygame = self._pygame
        rgb = displayable(picture)
        h, w = rgb.shape[:2]
        try:
            screen = pygame.display.get_surface()
            image = pygame.image.frombuffer(rgb, (w, h), "RGB")
            if self.mirror:
                image = pygame.transform.flip(image, True, False)
            target = screen.get_size()
            shown = square_pixel_size(w, h, self.sample_aspect_ratio)
            if target != (w, h) or shown != (w, h):
                fitted = _fit(shown, target)
                image = pygame.transform.smoothscale(image, fitted)
                screen.fill((0, 0, 0))
                screen.blit(image, ((target[0] - fitted[0]) // 2, (target[1] - fitted[1]) // 2))
            else:
                screen.blit(image, (0, 0))
            pygame.display.flip()
        except pygame.error as e:
            raise SinkError(f"the preview window stopped working (SDL: {e})") from e

    def _close(self) -> None:
        with WindowSink._open_lock:
            if WindowSink._open is self:
                self._pygame.display.quit()
                WindowSink._open = None
