"""The proxy's health: kube-proxy's staleness rule for ``/healthz`` and ``/livez``.

The proxy is healthy while it starts and whenever it is in sync; once an update is queued,
it stays healthy only if a sync completes within ``health_timeout`` (2 x syncPeriod).
``/healthz`` would also fail for a Node being deleted; kpyops does not watch its Node, so
both endpoints answer the same.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime


def _rfc3339(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class ProxierHealth:
    def __init__(self, health_timeout: float, clock: Callable[[], float] = time.time) -> None:
        self.health_timeout = health_timeout
        self.clock = clock
        self._lock = threading.Lock()
        self.last_updated: float | None = None
        self.oldest_pending_queued: float | None = None

    def queued_update(self) -> None:
        """A change is waiting for a sync."""
        with self._lock:
            if self.oldest_pending_queued is None:
                self.oldest_pending_queued = self.clock()

    def updated(self) -> None:
        """A sync completed: every queued change is now in the kernel."""
        with self._lock:
            self.last_updated = self.clock()
            self.oldest_pending_queued = None

    def is_healthy(self) -> bool:
        with self._lock:
            queued = self.oldest_pending_queued
        return queued is None or self.clock() - queued < self.health_timeout

    def status(self) -> tuple[int, dict]:
        """HTTP status code and JSON body, as kube-proxy's healthz server answers."""
        healthy = self.is_healthy()
        body = {
            "lastUpdated": _rfc3339(self.last_updated),
            "currentTime": _rfc3339(self.clock()),
            "nodeEligible": True,
        }
        return (200 if healthy else 503), body
