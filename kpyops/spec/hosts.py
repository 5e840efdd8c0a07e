"""The hosts a spec lists, and the checks on them that need the whole spec at once."""

from __future__ import annotations

from kpyops.spec.model import Cluster, Host


def all_hosts(cluster: Cluster) -> list[tuple[str, Host]]:
    """Every host with the spec path of the list it stands in."""
    s = cluster.spec
    out = [("spec.controlPlane.hosts", h) for h in s.control_plane.hosts]
    out += [("spec.etcd.hosts", h) for h in s.etcd.hosts]
    for i, g in enumerate(s.node_groups):
        out += [(f"spec.nodeGroups[{i}].hosts", h) for h in g.hosts]
    return out


def host_problems(cluster: Cluster) -> list[tuple[str, str]]:
    """Host names and addresses used twice, and addresses inside the pod or service ranges."""
    problems: list[tuple[str, str]] = []
    seen_names: dict[str, str] = {}
    seen_addresses: dict[str, str] = {}
    ranges = cluster.spec.networking.ranges()
    for path, host in all_hosts(cluster):
        if host.name in seen_names:
            problems.append((path, f"duplicate host name {host.name!r} (also in "
                             f"{seen_names[host.name]})"))
        seen_names.setdefault(host.name, path)
        addr = str(host.address)
        if addr in seen_addresses:
            problems.append((path, f"duplicate host address {addr} (also in "
                             f"{seen_addresses[addr]})"))
        seen_addresses.setdefault(addr, path)
        for label, cidr in ranges:
            if host.address in cidr:
                problems.append((path, f"host {host.name} address {addr} lies inside {label} "
                                 f"{cidr}"))
    return problems

