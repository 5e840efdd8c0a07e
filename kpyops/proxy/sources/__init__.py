"""Where Services and EndpointSlices come from: the Kubernetes API, or a directory of YAML."""

from __future__ import annotations

from typing import Protocol


class SourceHandler(Protocol):
    """What a source calls (``kpyops.proxy.proxier.Proxier`` implements it)."""

    def on_service_update(self, obj: dict) -> None: ...
    def on_service_delete(self, obj: dict) -> None: ...
    def on_services_synced(self) -> None: ...
    def on_slice_update(self, obj: dict) -> None: ...
    def on_slice_delete(self, obj: dict) -> None: ...
    def on_slices_synced(self) -> None: ...


SERVICE = "Service"
ENDPOINT_SLICE = "EndpointSlice"
