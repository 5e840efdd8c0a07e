"""What the API server would refuse in a Service or EndpointSlice, for sources that have no
API server in front of them (the directory source).

Each check returns the first problem as ``field: reason`` (the field path as kubectl names
it), or None when the object is one the proxy can use. Only what the proxy reads is checked.
"""

from __future__ import annotations

import ipaddress
import re

PROTOCOLS = ("TCP", "UDP", "SCTP")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
ADDRESS_TYPES = ("IPv4", "IPv6", "FQDN")
# RFC 1123 label (namespaces, port names) and subdomain (object names)
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _port_number(value: object, *, zero: bool = False) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)
            and (0 if zero else 1) <= value <= 65535)


def _ip(value: object) -> bool:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def _metadata(obj: dict) -> str | None:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return "metadata: missing"
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        return "metadata.name: missing"
    if len(name) > 253 or not _SUBDOMAIN.match(name):
        return f"metadata.name: {name!r} is not a valid name"
    namespace = meta.get("namespace", "default")
    if not isinstance(namespace, str) or len(namespace) > 63 or not _LABEL.match(namespace):
        return f"metadata.namespace: {namespace!r} is not a valid namespace"
    return None


def service_problem(obj: dict) -> str | None:
    problem = _metadata(obj)
    if problem:
        return problem
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return "spec: missing"
    kind = spec.get("type", "ClusterIP") or "ClusterIP"
    if kind not in SERVICE_TYPES:
        return f"spec.type: {kind!r} is not one of {', '.join(SERVICE_TYPES)}"
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    if not isinstance(ips, list):
        return "spec.clusterIPs: must be a list"
    for i, ip in enumerate(ips):
        if ip != "None" and not _ip(ip):
            return f"spec.clusterIPs[{i}]: {ip!r} is not an IP address"
    ports = spec.get("ports") or []
    if not isinstance(ports, list):
        return "spec.ports: must be a list"
    names = set()
    for i, port in enumerate(ports):
        where = f"spec.ports[{i}]"
        if not isinstance(port, dict):
            return f"{where}: must be a mapping"
        if not _port_number(port.get("port")):
            return f"{where}.port: {port.get('port')!r} is not a port number (1-65535)"
        if port.get("protocol", "TCP") not in PROTOCOLS:
            return f"{where}.protocol: {port.get('protocol')!r} is not one of {', '.join(PROTOCOLS)}"
        if not _port_number(port.get("nodePort", 0) or 0, zero=True):
            return f"{where}.nodePort: {port.get('nodePort')!r} is not a port number"
        name = port.get("name") or ""
        if len(ports) > 1 and not name:
            return f"{where}.name: required when a Service has more than one port"
        if name and (not isinstance(name, str) or not _LABEL.match(name) or len(name) > 63):
            return f"{where}.name: {name!r} is not a valid port name"
        if name in names:
            return f"{where}.name: {name!r} is used twice"
        names.add(name)
    if not _port_number(spec.get("healthCheckNodePort", 0) or 0, zero=True):
        return f"spec.healthCheckNodePort: {spec.get('healthCheckNodePort')!r} is not a port number"
    return None


def slice_problem(obj: dict) -> str | None:
    problem = _metadata(obj)
    if problem:
        return problem
    if obj.get("addressType") not in ADDRESS_TYPES:
        return f"addressType: {obj.get('addressType')!r} is not one of {', '.join(ADDRESS_TYPES)}"
    ports = obj.get("ports") or []
    if not isinstance(ports, list):
        return "ports: must be a list"
    for i, port in enumerate(ports):
        if not isinstance(port, dict):
            return f"ports[{i}]: must be a mapping"
        if port.get("port") is not None and not _port_number(port["port"]):
            return f"ports[{i}].port: {port['port']!r} is not a port number (1-65535)"
        if port.get("protocol", "TCP") not in PROTOCOLS:
            return f"ports[{i}].protocol: {port.get('protocol')!r} is not one of {', '.join(PROTOCOLS)}"
    endpoints = obj.get("endpoints") or []
    if not isinstance(endpoints, list):
        return "endpoints: must be a list"
    for i, ep in enumerate(endpoints):
        if not isinstance(ep, dict):
            return f"endpoints[{i}]: must be a mapping"
        addresses = ep.get("addresses")
        if not isinstance(addresses, list) or not addresses:
            return f"endpoints[{i}].addresses: at least one address is required"
        if obj["addressType"] != "FQDN":
            for j, address in enumerate(addresses):
                if not _ip(address):
                    return f"endpoints[{i}].addresses[{j}]: {address!r} is not an IP address"
    return None
