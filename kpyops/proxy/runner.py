"""BoundedFrequencyRunner: calls one function no more often than allowed, and at least
periodically, like kube-proxy's ``pkg/util/async`` runner.

``run()`` asks for a call; requests arriving faster than ``min_interval`` are coalesced into
one deferred call, except that a token bucket of ``burst`` calls absorbs short bursts.
The function is also called once ``max_interval`` after the previous call ended, and
``retry_after(d)`` schedules a call no later than ``d`` from now. Calls never overlap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class BoundedFrequencyRunner:
    def __init__(
        self,
        fn: Callable[[], None],
        min_interval: float,
        max_interval: float,
        burst: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fn = fn
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.burst = max(1, burst)
        self.clock = clock
        self._cond = threading.Condition()
        self._pending = False
        self._retry_at: float | None = None
        self._tokens = float(self.burst)
        self._tokens_at = clock()
        self._last_end = clock()
        self._stopped = False

    # -- requests (any thread) ------------------------------------------------------------------

    def run(self) -> None:
        """Ask for a call as soon as the rate limit allows."""
        with self._cond:
            self._pending = True
            self._cond.notify()

    def retry_after(self, delay: float) -> None:
        """Make sure a call happens within ``delay`` seconds."""
        with self._cond:
            at = self.clock() + delay
            self._retry_at = at if self._retry_at is None else min(self._retry_at, at)
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    # -- scheduling -------------------------------------------------------------------------------

    def _refill(self, now: float) -> None:
        if self.min_interval <= 0:
            self._tokens = float(self.burst)
        else:
            self._tokens = min(
                float(self.burst), self._tokens + (now - self._tokens_at) / self.min_interval
            )
        self._tokens_at = now

    def next_run_at(self, now: float) -> float:
        """When the next call is due (``now`` or earlier: due now). Caller holds the lock."""
        self._refill(now)
        token_at = now if self._tokens >= 1 else now + (1 - self._tokens) * self.min_interval
        due = self._last_end + self.max_interval
        if self._pending:
            due = min(due, token_at)
        if self._retry_at is not None:
            due = min(due, max(self._retry_at, token_at))
        return due

    def _take_turn(self) -> bool:
        """Wait until a call is due; False when stopped."""
        with self._cond:
            while not self._stopped:
                now = self.clock()
                due = self.next_run_at(now)
                if due <= now:
                    self._tokens = max(0.0, self._tokens - 1)
                    self._pending = False
                    self._retry_at = None
                    return True
                self._cond.wait(min(due - now, 1.0))
            return False

    def loop(self) -> None:
        """Call ``fn`` whenever due, until :meth:`stop`."""
        while self._take_turn():
            try:
                self.fn()
            except Exception:
                log.exception("sync failed")
            with self._cond:
                self._last_end = self.clock()
