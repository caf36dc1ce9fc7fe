"""When to try a lost live input again: exponential backoff with jitter, and when to give up.

Kept apart from the capture so the policy can be read, tuned and tested without a network: the
delay before retry ``n`` (1-based) is ``min(backoff_max, initial * 2 ** (n - 1))`` spread by jitter
("equal": half fixed, half random, so retries never come back-to-back; "full": anywhere from zero),
so many clients of one restarted server do not all knock at the same instant. ``retry`` runs an
attempt until it succeeds, the stop event is set (a sleep is an ``Event.wait``, so closing the
source interrupts it at once) or ``max_retries`` retries in a row failed.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Literal, Optional, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)

# Retries logged one a line each: from 0.5 s, doubling, they reach the 10 s ceiling at the 6th.
LOUD_RETRIES = 6
# After those, a warning at most this often (the others at debug level, which -v shows): a camera off
# for the night, retried every 5-10 s forever, put 4,000-7,000 lines a night into the journal even with -q.
QUIET_EVERY_S = 60.0


class GaveUp(Exception):
    """The retry policy is exhausted; ``attempts`` were made and the last failed with ``reason``."""

    def __init__(self, attempts: int, reason: str) -> None:
        if attempts:
            super().__init__(f"{reason} (gave up after {attempts} attempt{'s' if attempts != 1 else ''})")
        else:
            super().__init__(f"{reason} (not retried: max_retries is 0)")
        self.attempts = attempts
        self.reason = reason


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``initial`` seconds, doubling, capped at ``maximum``; None retries forever."""

    initial: float = 0.5
    maximum: float = 10.0
    max_retries: Optional[int] = None
    jitter: Literal["equal", "full"] = "equal"
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not (self.initial > 0 and self.maximum >= self.initial):
            raise ValueError(f"backoff needs 0 < initial <= maximum, got {self.initial} and {self.maximum}")
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError(f"max_retries must be None (forever) or >= 0, got {self.max_retries}")
        if self.jitter not in ("equal", "full"):
            raise ValueError(f"jitter must be 'equal' or 'full', got {self.jitter!r}")

    def ceiling(self, retry: int) -> float:
        """The un-jittered delay before retry number ``retry`` (1-based)."""
        return min(self.maximum, self.initial * 2.0 ** min(retry - 1, 62))

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based), jitter applied."""
        cap = self.ceiling(retry)
        if self.jitter == "full":
            return self.rng.uniform(0.0, cap)
        return cap / 2 + self.rng.uniform(0.0, cap / 2)

    def exhausted(self, retries_done: int) -> bool:
        """True when ``retries_done`` failed retries in a row use up the policy."""
        return self.max_retries is not None and retries_done >= self.max_retries


def retry(
    attempt: Callable[[], T],
    policy: Backoff,
    stop: threading.Event,
    *,
    what: str,
    first_failure: Optional[str] = None,
    reason_of: Callable[[BaseException], str] = str,
    retriable: Callable[[BaseException], bool] = lambda e: True,
    retries_done: int = 0,
    quiet_every: float = QUIET_EVERY_S,
    outage: Optional[Outage] = None,
    not_before: Optional[Callable[[], float]] = None,
) -> Optional[T]:
    """Call ``attempt`` until it returns, backing off between failures; None once ``stop`` is set.

    With ``first_failure`` (a reason: the stream was just lost) the first call is already a retry;
    without it the first call is the initial attempt and ``max_retries`` retries may follow.
    ``retries_done`` failed retries already made in a row (by an earlier call) are counted too.
    Exceptions that are not ``retriable`` propagate at once; exhausting the policy raises ``GaveUp``
    with the number of calls made and the last reason. The first ``LOUD_RETRIES`` failures, and any
    with a new reason, are logged at warning level; after those, one a ``quiet_every`` seconds is, with how
    long the input has been out, and the rest at debug level, so a run waiting all night logs a line a minute.
    ``outage`` carries that count over calls that retry one outage (a reopened output that failed before it
    worked is the same outage); by default each call is an outage of its own. ``not_before`` gives, before each retry,
    the least it must wait whatever the policy says (a republished stream's UNTOLD_REOPEN_EVERY_S): the retry line
    says the wait that comes, not the policy's 1.8 s before a try 15 s away.
    """
    reason = first_failure
    retries = retries_done
    attempts = 0
    said = outage if outage is not None else Outage(quiet_every)
    if reason is None:
        attempts += 1
        try:
            return attempt()
        except Exception as e:
            if stop.is_set() or not retriable(e):
                if stop.is_set():
                    return None
                raise
            reason = reason_of(e)
    while True:
        if policy.exhausted(retries):
            raise GaveUp(attempts, reason)
        retries += 1
        wait = policy.delay(retries)
        if not_before is not None:
            wait = max(wait, not_before())
        of = "" if policy.max_retries is None else f"/{policy.max_retries}"
        level, note = said.level_and_note(reason)
        log.log(level, "%s: %s; retry %d%s in %.1f s%s", what, reason, retries, of, wait, note)
        if stop.wait(wait):
            return None
        attempts += 1
        try:
            return attempt()
        except Exception as e:
            if stop.is_set():
                return None
            if not retriable(e):
                raise
            reason = reason_of(e)


class Outage:
    """Which retry lines of one outage are warnings: the first ``LOUD_RETRIES``, a reason not yet given, and then one
    every ``every`` seconds, which says how long the outage has lasted. One per outage: a new one starts loud again."""

    def __init__(self, every: float = QUIET_EVERY_S) -> None:
        self.every = every
        self.started = time.monotonic()
        self.last_warned = self.started
        self.retries = 0  # retries logged in this outage
        self.reasons: set[str] = set()  # said already in this outage: two that alternate are not news each time

    def level_and_note(self, reason: str) -> tuple[int, str]:
        """(logging level, text to add to the line) for the next retry of this outage, which failed for ``reason``."""
        self.retries += 1
        now = time.monotonic()
        new_reason = reason not in self.reasons and len(self.reasons) < 20  # bounded: a reason that holds a counter
        if new_reason:
            self.reasons.add(reason)
        if self.retries == LOUD_RETRIES:  # the last loud one says what follows, whatever its reason
            self.last_warned = now
            return logging.WARNING, f" (further retries are logged once every {self.every:g} s)"
        if self.retries < LOUD_RETRIES or new_reason:
            self.last_warned = now
            return logging.WARNING, ""
        if now - self.last_warned >= self.every:
            self.last_warned = now
            return logging.WARNING, f" (out for {_duration(now - self.started)})"
        return logging.DEBUG, ""


def _duration(seconds: float) -> str:
    """``seconds`` as an operator reads it: 45 s, 12 min, 3 h 05 min."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
