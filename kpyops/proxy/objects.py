"""Services and EndpointSlices (wire-form dicts) -> the proxy's model.

The rules of kube-proxy's ServicePort and EndpointSlice caches: headless and ExternalName
services are skipped, objects labelled ``service.kubernetes.io/service-proxy-name`` or
``service.kubernetes.io/headless`` are ignored, only the first address of an endpoint is used,
FQDN slices are ignored, and unknown conditions count as ready/serving.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kpyops.proxy.model import (
    DEFAULT_STICKY_MAX_AGE_SECONDS,
    TCP,
    Endpoint,
    ServicePort,
    ServicePortName,
)

LABEL_SERVICE_PROXY_NAME = "service.kubernetes.io/service-proxy-name"
LABEL_HEADLESS = "service.kubernetes.io/headless"
LABEL_SERVICE_NAME = "kubernetes.io/service-name"
ANNOTATION_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
ANNOTATION_TOPOLOGY_MODE = "service.kubernetes.io/topology-mode"
ANNOTATION_TOPOLOGY_HINTS = "service.kubernetes.io/topology-aware-hints"  # deprecated name
TOPOLOGY_TRAFFIC_DISTRIBUTIONS = ("PreferClose", "PreferSameZone", "PreferSameNode")

ObjectKey = tuple[str, str]  # (namespace, name)


def object_key(obj: dict) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "default", meta["name"]


def is_proxied(obj: dict, proxy_name: str = "") -> bool:
    """False for objects another proxy handles, or marked headless (kube-proxy's selector)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    if LABEL_HEADLESS in labels:
        return False
    owner = labels.get(LABEL_SERVICE_PROXY_NAME)
    return owner is None or (bool(proxy_name) and owner == proxy_name)


def needs_health_check(spec: dict) -> bool:
    """kube-proxy's NeedsHealthCheck: a LoadBalancer with the Local external policy."""
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def _hint_names(endpoint: dict, kind: str) -> tuple[str, ...]:
    """Names in an endpoint's ``hints.forZones`` or ``hints.forNodes``, sorted."""
    hints = (endpoint.get("hints") or {}).get(kind) or []
    return tuple(sorted(h["name"] for h in hints if h.get("name")))


def wants_topology(svc: dict) -> bool:
    """The Service asks for topology-aware routing: the topology-mode annotation (or its
    older name) set to anything but empty/disabled, or a topology trafficDistribution
    (PreferClose, PreferSameZone, PreferSameNode)."""
    annotations = (svc.get("metadata") or {}).get("annotations") or {}
    mode = annotations.get(ANNOTATION_TOPOLOGY_MODE, annotations.get(ANNOTATION_TOPOLOGY_HINTS))
    if mode not in (None, "", "disabled", "Disabled"):
        return True
    return (svc.get("spec") or {}).get("trafficDistribution") in TOPOLOGY_TRAFFIC_DISTRIBUTIONS


def service_ports(svc: dict, proxy_name: str = "") -> dict[ServicePortName, ServicePort]:
    """Every port of a Service, or nothing if the proxy must not handle it."""
    if not is_proxied(svc, proxy_name):
        return {}
    spec = svc.get("spec") or {}
    cluster_ips = tuple(
        spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    )
    if spec.get("type") == "ExternalName" or not cluster_ips or cluster_ips[0] in ("", "None"):
        return {}
    namespace, name = object_key(svc)
    affinity = spec.get("sessionAffinity") == "ClientIP"
    timeout = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get(
        "timeoutSeconds"
    ) or DEFAULT_STICKY_MAX_AGE_SECONDS
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    lb_ips = tuple(i["ip"] for i in ingress if i.get("ip") and i.get("ipMode", "VIP") == "VIP")
    svc_type = spec.get("type") or "ClusterIP"
    topology = wants_topology(svc)
    out = {}
    for port in spec.get("ports") or []:
        protocol = port.get("protocol") or TCP
        spn = ServicePortName(namespace, name, port.get("name") or "", protocol)
        out[spn] = ServicePort(
            name=spn,
            cluster_ips=cluster_ips,
            port=int(port["port"]),
            protocol=protocol,
            node_port=int(port.get("nodePort") or 0)
            if svc_type in ("NodePort", "LoadBalancer")
            else 0,
            external_ips=tuple(spec.get("externalIPs") or ()),
            load_balancer_ips=lb_ips if svc_type == "LoadBalancer" else (),
            load_balancer_source_ranges=tuple(spec.get("loadBalancerSourceRanges") or ()),
            health_check_node_port=int(spec.get("healthCheckNodePort") or 0)
            if needs_health_check(spec)
            else 0,
            session_affinity_client_ip=affinity,
            sticky_max_age_seconds=int(timeout),
            external_policy_local=spec.get("externalTrafficPolicy") == "Local",
            internal_policy_local=spec.get("internalTrafficPolicy") == "Local",
            topology_aware=topology,
        )
    return out


@dataclass(frozen=True)
class ParsedSlice:
    """One EndpointSlice reduced to what the proxy uses."""

    service: ObjectKey  # the owning Service
    name: str
    endpoints: dict[ServicePortName, tuple[Endpoint, ...]]
    trigger_time: float | None  # last-change-trigger-time annotation, epoch seconds


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def parse_endpoint_slice(obj: dict, hostname: str, proxy_name: str = "") -> ParsedSlice | None:
    """The endpoints an EndpointSlice gives each service port, or None if it is not ours."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    service = labels.get(LABEL_SERVICE_NAME)
    if not service or obj.get("addressType") == "FQDN" or not is_proxied(obj, proxy_name):
        return None
    namespace, name = object_key(obj)
    endpoints: dict[ServicePortName, list[Endpoint]] = {}
    for port in obj.get("ports") or []:
        if port.get("port") is None:
            continue
        spn = ServicePortName(
            namespace, service, port.get("name") or "", port.get("protocol") or TCP
        )
        eps = endpoints.setdefault(spn, [])
        for ep in obj.get("endpoints") or []:
            addresses = ep.get("addresses") or []
            if not addresses:
                continue
            cond = ep.get("conditions") or {}
            ready = cond.get("ready") is not False
            node = ep.get("nodeName")
            eps.append(
                Endpoint(
                    ip=addresses[0],
                    port=int(port["port"]),
                    ready=ready,
                    serving=cond["serving"] if cond.get("serving") is not None else ready,
                    terminating=cond.get("terminating") is True,
                    node_name=node,
                    zone=ep.get("zone"),
                    is_local=bool(node) and node.lower() == hostname,
                    zone_hints=_hint_names(ep, "forZones"),
                    node_hints=_hint_names(ep, "forNodes"),
                )
            )
    trigger = _parse_time((meta.get("annotations") or {}).get(ANNOTATION_TRIGGER_TIME))
    return ParsedSlice(
        service=(namespace, service),
        name=name,
        endpoints={spn: tuple(eps) for spn, eps in endpoints.items()},
        trigger_time=trigger,
    )


def merge_slices(slices: list[ParsedSlice]) -> dict[ServicePortName, tuple[Endpoint, ...]]:
    """All endpoints of one service, over its slices; a duplicate ip:port keeps a ready copy."""
    merged: dict[ServicePortName, dict[str, Endpoint]] = {}
    for parsed in sorted(slices, key=lambda s: s.name):
        for spn, eps in parsed.endpoints.items():
            by_address = merged.setdefault(spn, {})
            for ep in eps:
                seen = by_address.get(ep.address)
                if seen is None or (ep.ready and not seen.ready):
                    by_address[ep.address] = ep
    return {spn: tuple(sorted(eps.values())) for spn, eps in merged.items() if eps}
