"""Builders of Service and EndpointSlice manifests (wire-form dicts).

Used by tests, the benchmark, and anyone writing files for the directory source by hand.
"""

from __future__ import annotations

from typing import Any

from kpyops.proxy.objects import ANNOTATION_TRIGGER_TIME, LABEL_SERVICE_NAME


def service(
    name: str,
    cluster_ip: str,
    ports: list[dict[str, Any]],
    namespace: str = "default",
    **spec: Any,
) -> dict[str, Any]:
    """A Service; ``ports`` as in the API (name, port, protocol, nodePort, targetPort)."""
    labels = spec.pop("labels", None)
    status = spec.pop("status", None)
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterIP": cluster_ip, "clusterIPs": [cluster_ip], "ports": ports, **spec},
    }
    if labels:
        obj["metadata"]["labels"] = labels
    if status:
        obj["status"] = status
    return obj


def endpoint(
    ip: str,
    node: str | None = None,
    ready: bool | None = True,
    serving: bool | None = None,
    terminating: bool | None = None,
) -> dict[str, Any]:
    """One entry of an EndpointSlice's ``endpoints`` list."""
    conditions = {
        k: v
        for k, v in (("ready", ready), ("serving", serving), ("terminating", terminating))
        if v is not None
    }
    out: dict[str, Any] = {"addresses": [ip], "conditions": conditions}
    if node:
        out["nodeName"] = node
    return out


def endpoint_slice(
    service_name: str,
    endpoints: list[dict[str, Any]],
    ports: list[dict[str, Any]],
    namespace: str = "default",
    name: str | None = None,
    address_type: str = "IPv4",
    trigger_time: str | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An EndpointSlice of ``service_name``; ``ports`` as in the API (name, port, protocol)."""
    meta: dict[str, Any] = {
        "name": name or f"{service_name}-abc12",
        "namespace": namespace,
        "labels": {LABEL_SERVICE_NAME: service_name, **(labels or {})},
    }
    if trigger_time:
        meta["annotations"] = {ANNOTATION_TRIGGER_TIME: trigger_time}
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": meta,
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": ports,
    }
