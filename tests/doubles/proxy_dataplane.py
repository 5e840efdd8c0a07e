"""A Dataplane double that records what it was asked to do, for unit tests of the sync loop."""

from __future__ import annotations

from kpyops.proxy.dataplane import DataplaneError, SyncResult
from kpyops.proxy.model import EndpointsMap, ServiceMap, ServicePortName


class FakeDataplane:
    """A dataplane that records what it was asked to do, for unit tests of the loop."""

    def __init__(self, fail_times: int = 0) -> None:
        self.calls: list[tuple[dict, dict, set[ServicePortName] | None]] = []
        self.cleanups = 0
        self.canary_ok = True
        self.fail_times = fail_times  # raise DataplaneError on the next N syncs

    def sync(
        self,
        services: ServiceMap,
        endpoints: EndpointsMap,
        changed: set[ServicePortName] | None,
    ) -> SyncResult:
        if self.fail_times > 0:
            self.fail_times -= 1
            raise DataplaneError("fake failure")
        self.calls.append(
            (dict(services), dict(endpoints), None if changed is None else set(changed))
        )
        self.canary_ok = True
        written = len(services) if changed is None else len(changed)
        return SyncResult(full=changed is None, services_written=written)

    def cleanup(self) -> None:
        self.cleanups += 1

    def check_canary(self) -> bool:
        return self.canary_ok

    @property
    def last(self) -> tuple[dict, dict, set[ServicePortName] | None]:
        return self.calls[-1]
