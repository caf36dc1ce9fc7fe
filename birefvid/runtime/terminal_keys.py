"""Switch a live run's effect with single keys pressed in the terminal it runs in.

A call's virtual camera has no window and often no preview page: the person in the call has only
the terminal where ``birefvid live`` runs. There, b, r, g and n switch the effect as in the preview
window, without Enter, and q ends the run as it does there (as Ctrl-C: the recordings are kept). The terminal is put in cbreak mode (no line buffering, no echo; Ctrl-C still
interrupts) only while the run is in the foreground, and restored when the run ends. A run in the
background (``&``, Ctrl-Z then ``bg``) neither reads the terminal, which would stop it (SIGTTIN),
nor changes its mode; in the foreground (again, or at last after ``fg``) it reads keys.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import select
import threading
from typing import IO, Any, Callable, Optional

from .. import exiting
from ..errors import ConfigError
from .live_effects import KEYS, EffectSwitch

log = logging.getLogger(__name__)

POLL_S = 0.2  # how often the reader looks at the stop flag and at who holds the terminal
# what the arrow, function and other special keys send (ESC [ B is the down arrow): not letters to act on
QUIT_KEY = "q"  # ends the run, as in the preview window
ESCAPE_SEQUENCE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|O.|.)?")


class TerminalKeys:
    """Reads keys from ``stream`` (a terminal) on a daemon thread once ``attach`` is given a switch; a context manager."""

    def __init__(self, stream: Optional[IO[Any]], printer: Optional[Callable[[str], None]] = None,
                 on_quit: Optional[Callable[[], None]] = None) -> None:  # fmt: skip
        """``stream``: the terminal to read (stdin); anything that is not a terminal leaves this inert.
        ``printer``: told once which keys do what, when the keys start working. ``on_quit``: called for q
        (ends the run; without it q does nothing)."""
        self._fd = _terminal_fd(stream)
        self._printer = printer
        self._on_quit = on_quit
        self._saved: Optional[list[Any]] = None  # the terminal's mode before cbreak, restored at the end
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._effects: Optional[EffectSwitch] = None

    @property
    def active(self) -> bool:
        """True while keys are being read."""
        return self._thread is not None and self._thread.is_alive()

    def attach(self, effects: EffectSwitch) -> None:
        """Start reading keys for ``effects`` (a run whose effect can switch, from a terminal): at once in the
        foreground; a run started with ``&`` reads them once ``fg`` brings it to the foreground."""
        if self._fd is None or not effects.available or self._thread is not None or self._holder() is None:
            return
        self._effects = effects
        self._thread = threading.Thread(target=self._read, name="terminal-keys", daemon=True)  # idle while in the background
        self._thread.start()
        if self._printer is not None and self._foreground():
            keys = ", ".join(f"{key} {name}" for key, name in KEYS.items() if name in effects.available)
            quits = ", q ends the run" if self._on_quit is not None else ""
            self._printer(f"live: keys {keys} switch the effect{quits} (press them here)")

    def __enter__(self) -> "TerminalKeys":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading and give the terminal back its mode (when in the foreground: from the background
        that would stop the process, and the shell resets the mode when it takes the terminal back)."""
        self._stop.set()
        if self._thread is not None and exiting.begun(self._thread):  # not when a signal landed in its start() first
            self._thread.join(timeout=2 * POLL_S + 1.0)
        if self._saved is not None and self._foreground():
            import termios

            try:
                termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)  # type: ignore[arg-type]
            except (termios.error, OSError):
                pass
            self._saved = None

    def _holder(self) -> Optional[int]:
        """The process group the terminal serves now; None when it is not this session's terminal, or went away (ssh closed)."""
        try:
            return os.tcgetpgrp(self._fd)  # type: ignore[arg-type]
        except OSError:
            return None

    def _foreground(self) -> bool:
        return self._holder() == os.getpgrp()

    def _cbreak(self) -> None:
        """Key by key, without echo, from now on (again after the shell took the terminal back: Ctrl-Z, fg)."""
        import termios
        import tty

        mode = termios.tcgetattr(self._fd)
        if mode[3] & (termios.ICANON | termios.ECHO):
            if self._saved is None:
                self._saved = mode
            tty.setcbreak(self._fd, termios.TCSANOW)

    def _read(self) -> None:
        fd = self._fd
        assert fd is not None and self._effects is not None
        while not self._stop.is_set():
            if not self._foreground():
                self._stop.wait(POLL_S)
                continue
            try:
                self._cbreak()
                ready, _, _ = select.select([fd], [], [], POLL_S)
                if not ready or not self._foreground():
                    continue
                data = os.read(fd, 64)
            except (OSError, ValueError) as e:  # the terminal closed: the run goes on without keys
                log.debug("terminal keys stop: %s", e)
                return
            if not data:
                return
            for key in ESCAPE_SEQUENCE.sub("", data.decode("utf-8", errors="ignore")).lower():
                if key == QUIT_KEY and self._on_quit is not None:  # as in the window: pressed in a call, it was ignored
                    if self._printer is not None:
                        self._printer("live: q pressed, ending the run")
                    self._on_quit()
                elif key in KEYS:
                    try:
                        self._effects.select(KEYS[key], by="terminal")
                    except ConfigError as e:
                        log.warning("key %s: %s", key, e)


def _terminal_fd(stream: Optional[IO[Any]]) -> Optional[int]:
    """The file descriptor of ``stream`` when it is a terminal on a system with termios, else None."""
    if stream is None or os.name != "posix" or importlib.util.find_spec("termios") is None:
        return None
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # a replaced sys.stdin (a notebook's, pytest's capture)
        return None
    return fd if os.isatty(fd) else None
