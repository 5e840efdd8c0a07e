"""Change trackers: Services and EndpointSlices in, pending changes out, like kube-proxy's.

Each tracker keeps the current state per object and, for objects changed since the last
sync, the state as it was at that sync; a change back to that state cancels itself.
``apply`` moves the pending changes into the maps a sync hands to the dataplane and returns
the service port names whose service or endpoints really changed (for partial syncs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kpyops.proxy.model import Endpoint, ServicePort, ServicePortName
from kpyops.proxy.objects import (
    ObjectKey,
    ParsedSlice,
    merge_slices,
    object_key,
    parse_endpoint_slice,
    service_ports,
)


class ServiceChangeTracker:
    """Service objects -> ``dict[ServicePortName, ServicePort]``."""

    def __init__(self, proxy_name: str = "") -> None:
        self.proxy_name = proxy_name
        self._current: dict[ObjectKey, dict[ServicePortName, ServicePort]] = {}
        self._synced_before: dict[ObjectKey, dict[ServicePortName, ServicePort]] = {}

    def update(self, svc: dict) -> bool:
        """A Service was added or modified; True if a change is now pending."""
        return self._set(object_key(svc), service_ports(svc, self.proxy_name))

    def delete(self, svc: dict) -> bool:
        """A Service was deleted; True if a change is now pending."""
        return self._set(object_key(svc), {})

    def _set(self, key: ObjectKey, ports: dict[ServicePortName, ServicePort]) -> bool:
        if key not in self._synced_before:
            self._synced_before[key] = self._current.get(key, {})
        before = self._synced_before[key]
        if ports:
            self._current[key] = ports
        else:
            self._current.pop(key, None)
        if ports == before:
            del self._synced_before[key]
        return self.pending > 0

    @property
    def pending(self) -> int:
        """How many services have changes not yet applied."""
        return len(self._synced_before)

    def apply(self, service_map: dict[ServicePortName, ServicePort]) -> set[ServicePortName]:
        """Bring ``service_map`` up to date; the names whose ServicePort changed."""
        changed: set[ServicePortName] = set()
        for key, before in self._synced_before.items():
            now = self._current.get(key, {})
            for spn in before.keys() | now.keys():
                if before.get(spn) != now.get(spn):
                    changed.add(spn)
            for spn in before.keys() - now.keys():
                service_map.pop(spn, None)
            service_map.update(now)
        self._synced_before.clear()
        return changed


@dataclass
class EndpointsUpdate:
    """What applying pending EndpointSlice changes did."""

    changed: set[ServicePortName] = field(default_factory=set)
    previous: dict[ServicePortName, tuple[Endpoint, ...]] = field(default_factory=dict)
    trigger_times: list[float] = field(default_factory=list)


class EndpointSliceTracker:
    """EndpointSlice objects, merged per service -> ``dict[ServicePortName, tuple[Endpoint]]``."""

    def __init__(self, hostname: str, proxy_name: str = "") -> None:
        self.hostname = hostname.lower()
        self.proxy_name = proxy_name
        self._slices: dict[ObjectKey, dict[str, ParsedSlice]] = {}
        self._slice_owner: dict[ObjectKey, ObjectKey] = {}  # slice key -> service key
        self._synced_before: dict[ObjectKey, dict[ServicePortName, tuple[Endpoint, ...]]] = {}
        self._trigger_times: dict[ObjectKey, float] = {}

    def _merged(self, service: ObjectKey) -> dict[ServicePortName, tuple[Endpoint, ...]]:
        return merge_slices(list(self._slices.get(service, {}).values()))

    def update(self, obj: dict) -> bool:
        """An EndpointSlice was added or modified; True if a change is now pending."""
        key = object_key(obj)
        parsed = parse_endpoint_slice(obj, self.hostname, self.proxy_name)
        owner = self._slice_owner.get(key)
        if owner is not None and (parsed is None or parsed.service != owner):
            self._remove(key)  # the slice moved to another service, or is no longer ours
        if parsed is None:
            return self.pending > 0
        service = parsed.service
        if service not in self._synced_before:
            self._synced_before[service] = self._merged(service)
        self._slices.setdefault(service, {})[key[1]] = parsed
        self._slice_owner[key] = service
        if parsed.trigger_time is not None:
            self._trigger_times[service] = min(
                parsed.trigger_time, self._trigger_times.get(service, parsed.trigger_time)
            )
        self._drop_if_unchanged(service)
        return self.pending > 0

    def delete(self, obj: dict) -> bool:
        """An EndpointSlice was deleted; True if a change is now pending."""
        self._remove(object_key(obj))
        return self.pending > 0

    def _remove(self, key: ObjectKey) -> None:
        service = self._slice_owner.pop(key, None)
        if service is None:
            return
        if service not in self._synced_before:
            self._synced_before[service] = self._merged(service)
        slices = self._slices[service]
        slices.pop(key[1], None)
        if not slices:
            del self._slices[service]
        self._drop_if_unchanged(service)

    def _drop_if_unchanged(self, service: ObjectKey) -> None:
        if self._merged(service) == self._synced_before[service]:
            del self._synced_before[service]
            self._trigger_times.pop(service, None)

    @property
    def pending(self) -> int:
        """How many services have endpoint changes not yet applied."""
        return len(self._synced_before)

    def apply(self, endpoints_map: dict[ServicePortName, tuple[Endpoint, ...]]) -> EndpointsUpdate:
        """Bring ``endpoints_map`` up to date with the pending changes."""
        update = EndpointsUpdate()
        for service, before in self._synced_before.items():
            now = self._merged(service)
            for spn in before.keys() | now.keys():
                if before.get(spn) != now.get(spn):
                    update.changed.add(spn)
                    update.previous[spn] = before.get(spn, ())
            for spn in before.keys() - now.keys():
                endpoints_map.pop(spn, None)
            endpoints_map.update(now)
            if service in self._trigger_times:
                update.trigger_times.append(self._trigger_times[service])
        self._synced_before.clear()
        self._trigger_times.clear()
        return update
