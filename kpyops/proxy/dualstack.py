"""DualStackDataplane: one dataplane per IP family behind the Dataplane interface."""

from __future__ import annotations

from collections.abc import Sequence

from kpyops.proxy.dataplane import Dataplane, SyncResult
from kpyops.proxy.model import EndpointsMap, ServiceMap, ServicePortName


class DualStackDataplane:
    def __init__(self, planes: Sequence[Dataplane]) -> None:
        self.planes = list(planes)

    def sync(
        self, services: ServiceMap, endpoints: EndpointsMap, changed: set[ServicePortName] | None
    ) -> SyncResult:
        results = [p.sync(services, endpoints, changed) for p in self.planes]
        return SyncResult(
            full=all(r.full for r in results),
            services_written=sum(r.services_written for r in results),
            objects_deleted=sum(r.objects_deleted for r in results),
            compute_seconds=sum(r.compute_seconds for r in results),
            apply_seconds=sum(r.apply_seconds for r in results),
        )

    def cleanup(self) -> None:
        for plane in self.planes:
            plane.cleanup()

    def check_canary(self) -> bool:
        return all([p.check_canary() for p in self.planes])
