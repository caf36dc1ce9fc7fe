"""The live run's effect, switched while the run goes on: from the preview window's keys or the
HTTP preview page, without stopping the camera, the model or a call's virtual camera.

A person in a call turns the blur off to show the room, or on again, in a keypress; restarting
the run would take the virtual camera away from the call and cost the model's warm-up. Only runs
that show pictures (blur, replace, green, ``none``: the camera as it is, where a call may start, and ``overlay``)
switch, among those: an alpha or mask run's outputs carry another kind of picture. Each effect's compositor is built
once, on first use; the display path reads the current one each frame, so a switch shows on the
next frame.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable, Optional

from ..compose.background import Background
from ..compose.compositor import Compositor
from ..errors import ConfigError, option
from ..job import EFFECT_OUTPUT, EFFECT_PICTURE, EffectSpec

log = logging.getLogger(__name__)

NONE = "none"  # the camera's picture, unchanged
SWITCHABLE = ("blur", "replace", "green", NONE, "overlay")
# the preview window's keys (on any keyboard layout: pygame's event.unicode)
KEYS = {"b": "blur", "r": "replace", "g": "green", "n": NONE, "o": "overlay"}
# switches the report lists (the latest): a script switching 100 times a second for hours must not grow it without end
CHANGES_KEPT = 1000


class EffectSwitch:
    """The current effect and its compositor, for the display path; ``select`` switches it from any thread."""

    def __init__(self, effect: EffectSpec, background: Optional[Background] = None, *, started: Optional[float] = None) -> None:
        """``effect``: the run's effect as given (its blur sigma, key colour and matte apply to every effect);
        ``background``: the open ``--background`` (replace is available only with one)."""
        self._spec = effect
        self._background = background
        self._lock = threading.Lock()
        self._compositors: dict[str, Compositor] = {}
        self._started = time.monotonic() if started is None else started
        self.effect = effect.effect
        if EFFECT_PICTURE[effect.effect] == "rgb":
            self.available: tuple[str, ...] = tuple(e for e in SWITCHABLE if e != "replace" or background is not None)
        else:
            self.available = ()
        self._current = self._build(effect.effect)
        self.changes: collections.deque[dict[str, Any]] = collections.deque(maxlen=CHANGES_KEPT)  # for the report: when, what, from where
        self.switches = 0  # every switch, listed or not
        # set once the run shows its first picture (for API callers to wait on), or ends without one: never waited on for ever
        self.showing = threading.Event()
        self.ended = threading.Event()  # set once the run is over, however it ended, its outputs finished
        self.listeners: list[Callable[[str, str], None]] = []  # told (effect, by) on each switch: the printer
        # named now, on the thread that starts the run: a switch comes from a key, page or app thread
        self._needs_background = (
            f"replace needs a {option('background')}, given when the run starts (this run's effect with {option('background')})"
        )

    def begin(self, started: float) -> None:
        """The run's first picture is shown at ``started`` (monotonic): switch times count from it, as the
        run's duration and a recording's timeline do, not from a warm-up that can take 20 s; a switch made
        during the warm-up shows from that first picture, at 0."""
        with self._lock:
            self._started = started
            for change in self.changes:
                change["seconds"] = 0.0
        self.showing.set()

    def end(self) -> None:
        """The run is over: wake a caller waiting on ``showing`` even when no picture was ever shown (a failed start)."""
        self.ended.set()
        self.showing.set()

    def _build(self, name: str) -> Optional[Compositor]:
        if name == NONE:
            return None
        if name not in self._compositors:
            spec = self._spec
            self._compositors[name] = Compositor(
                EFFECT_OUTPUT[name], foreground=spec.foreground, key=spec.key_color,  # type: ignore[arg-type]
                blur_sigma=spec.blur_sigma, background=self._background if name == "replace" else None,
                overlay_color=spec.overlay_color, overlay_opacity=spec.overlay_opacity,  # type: ignore[arg-type]
                blur_work_scale=max(1, int(spec.blur_sigma // 4)), matte=spec.matte,
            )  # fmt: skip
        return self._compositors[name]

    @property
    def compositor(self) -> Optional[Compositor]:
        """What composes the next picture; None shows the camera's picture as it is."""
        return self._current

    def why_not(self, name: str) -> Optional[str]:
        """Why ``name`` cannot be switched to (one line), or None when it can."""
        if not self.available:
            return f"this run's effect is {self.effect}, whose outputs carry another kind of picture; effects switch in blur, replace, green, none and overlay runs"
        if name not in SWITCHABLE:
            return f"unknown effect {name!r}; choose from {', '.join(self.available)}"
        if name not in self.available:
            return self._needs_background
        return None

    def select(self, name: str, by: str = "api") -> str:
        """Switch to effect ``name`` from the next picture on; ConfigError saying why when it cannot be."""
        why = self.why_not(name)
        if why is not None:
            raise ConfigError(why)
        with self._lock:
            if name == self.effect:
                return name
            compositor = self._build(name)
            self._current, self.effect = compositor, name  # one assignment each: the display path sees either
            self.changes.append({"seconds": round(max(0.0, time.monotonic() - self._started), 3), "effect": name, "by": by})
            self.switches += 1
            listeners = list(self.listeners)
        log.info("effect: %s (switched from the %s)", name, by)
        for listener in listeners:
            listener(name, by)
        return name
