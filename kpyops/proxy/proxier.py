"""The proxy's sync loop: sources feed change trackers; one function programs the dataplane.

:class:`Proxier` is what sources call (``on_service_update`` ...). Each change is recorded
in a tracker and asks the :class:`~kpyops.proxy.runner.BoundedFrequencyRunner` for a sync;
:meth:`Proxier.sync_proxy_rules` then applies pending changes to the service and endpoint
maps and hands them to the dataplane: partially (only changed service ports) when it can,
fully at start, after a failure, when the canary check finds our rules flushed, and every
``full_sync_period``.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable

from kpyops.proxy.conntrack import ConntrackCleaner
from kpyops.proxy.dataplane import Dataplane, DataplaneError, SyncResult
from kpyops.proxy.health import ProxierHealth
from kpyops.proxy.metrics import ProxyMetrics
from kpyops.proxy.model import Endpoint, ServicePort, ServicePortName
from kpyops.proxy.runner import BoundedFrequencyRunner
from kpyops.proxy.service_health import (
    ServiceHealthServers,
    local_ready_endpoints,
    wanted_health_ports,
)
from kpyops.proxy.trackers import EndpointSliceTracker, ServiceChangeTracker

log = logging.getLogger(__name__)

FULL_SYNC_PERIOD = 3600.0  # kube-proxy's proxyutil.FullSyncPeriod


class Proxier:
    def __init__(
        self,
        dataplane: Dataplane,
        hostname: str,
        sync_period: float = 30.0,
        min_sync_period: float = 1.0,
        full_sync_period: float = FULL_SYNC_PERIOD,
        conntrack: ConntrackCleaner | None = None,
        metrics: ProxyMetrics | None = None,
        health: ProxierHealth | None = None,
        proxy_name: str = "",
        service_health: ServiceHealthServers | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dataplane = dataplane
        self.sync_period = sync_period
        self.full_sync_period = full_sync_period
        self.conntrack = conntrack
        self.metrics = metrics or ProxyMetrics()
        self.health = health or ProxierHealth(2 * sync_period)
        self.clock = clock
        self.service_health = service_health
        self.services = ServiceChangeTracker(proxy_name)
        self.slices = EndpointSliceTracker(hostname, proxy_name)
        self.service_map: dict[ServicePortName, ServicePort] = {}
        self.endpoints_map: dict[ServicePortName, tuple[Endpoint, ...]] = {}
        self.runner = BoundedFrequencyRunner(self.sync_proxy_rules, min_sync_period, sync_period)
        self._lock = threading.Lock()
        self._services_synced = False
        self._slices_synced = False
        self._need_full_sync = True
        self._last_full_sync = clock()
        self._last_canary_check = clock()
        self.last_result: SyncResult | None = None
        self.syncs = 0

    # -- events from sources (any thread) -------------------------------------------------------

    def _queued(self) -> None:
        self.health.queued_update()
        self.metrics.last_queued.set_to_current_time()
        self.runner.run()

    def on_service_update(self, obj: dict) -> None:
        with self._lock:
            pending = self.services.update(obj)
        if pending:
            self._queued()

    def on_service_delete(self, obj: dict) -> None:
        with self._lock:
            pending = self.services.delete(obj)
        if pending:
            self._queued()

    def on_slice_update(self, obj: dict) -> None:
        with self._lock:
            pending = self.slices.update(obj)
        if pending:
            self._queued()

    def on_slice_delete(self, obj: dict) -> None:
        with self._lock:
            pending = self.slices.delete(obj)
        if pending:
            self._queued()

    def on_services_synced(self) -> None:
        with self._lock:
            self._services_synced = True
        self.runner.run()

    def on_slices_synced(self) -> None:
        with self._lock:
            self._slices_synced = True
        self.runner.run()

    @property
    def ready(self) -> bool:
        """Both sources have delivered their initial listing."""
        return self._services_synced and self._slices_synced

    def request_full_sync(self) -> None:
        """Make the next sync rewrite everything."""
        self._need_full_sync = True
        self.runner.run()

    # -- the sync -------------------------------------------------------------------------------

    def sync_proxy_rules(self) -> SyncResult | None:
        """Apply pending changes to the kernel. Runs only in the runner's thread (or tests)."""
        # A large sync allocates millions of short-lived strings; the cyclic GC would scan the
        # whole heap again and again meanwhile. Nothing here makes cycles: collect afterwards.
        enabled = gc.isenabled()
        gc.disable()
        try:
            return self._sync_proxy_rules()
        finally:
            if enabled:
                gc.enable()

    def _sync_proxy_rules(self) -> SyncResult | None:
        if not self.ready:
            log.debug("not syncing until Services and EndpointSlices have been received")
            return None
        start = time.perf_counter()
        with self._lock:
            service_changes = self.services.apply(self.service_map)
            endpoint_update = self.slices.apply(self.endpoints_map)
        self.metrics.service_changes.inc(len(service_changes))
        self.metrics.endpoint_changes.inc(len(endpoint_update.changed))
        changed = service_changes | endpoint_update.changed

        now = self.clock()
        # Check on every periodic sync (nothing changed) and at least once per syncPeriod.
        canary_due = not changed or now - self._last_canary_check >= self.sync_period
        if not self._need_full_sync and canary_due:
            self._last_canary_check = now
            if not self.dataplane.check_canary():
                log.warning("proxy rules were flushed by someone else: doing a full sync")
                self._need_full_sync = True
        if now - self._last_full_sync >= self.full_sync_period:
            self._need_full_sync = True
        full = self._need_full_sync

        try:
            result = self.dataplane.sync(
                self.service_map, self.endpoints_map, None if full else changed
            )
        except DataplaneError as err:
            log.error("sync failed, retrying with a full sync in %.0fs: %s", self.sync_period, err)
            self.metrics.sync_failures.inc()
            self._need_full_sync = True
            self.runner.retry_after(self.sync_period)
            return None

        if self.conntrack is not None and endpoint_update.previous:
            self.conntrack.clean(self.service_map, endpoint_update.previous, self.endpoints_map)
        elapsed = time.perf_counter() - start
        if full:
            self._need_full_sync = False
            self._last_full_sync = now
            self._last_canary_check = now
            self.metrics.sync_full_duration.observe(elapsed)
        else:
            self.metrics.sync_partial_duration.observe(elapsed)
        self.metrics.sync_duration.observe(elapsed)
        self.metrics.last_sync.set_to_current_time()
        wall = time.time()
        for trigger in endpoint_update.trigger_times:
            if wall >= trigger:
                self.metrics.network_programming.observe(wall - trigger)
        self.health.updated()
        if self.service_health is not None:
            wanted = wanted_health_ports(self.service_map)
            local = local_ready_endpoints(wanted, self.service_map, self.endpoints_map)
            self.service_health.sync(wanted, local)
        self.last_result = result
        self.syncs += 1
        log.info(
            "synced %s: %d service ports written, %d chains deleted, %.1f ms",
            "fully" if result.full else "partially",
            result.services_written,
            result.objects_deleted,
            elapsed * 1000,
        )
        return result
