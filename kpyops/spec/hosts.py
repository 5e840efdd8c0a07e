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



class NotRemovable(ValueError):
    """A host that `delete node` cannot take out of the spec (said before anything runs)."""


def without_node(user: Cluster, host: str, groups: dict[str, list[str]],
                 masters: set[str]) -> Cluster:
    """The user's spec with worker node ``host`` taken out: dropped from its group's hosts
    list, or, in a counted group (machines the cloud names and numbers), the count lowered by
    one when ``host`` is the group's last machine. ``groups``: each node group's machines in
    order, as the inventory lists them; ``masters``: the control planes and etcd members."""
    if host in masters:
        raise NotRemovable(f"{host} is a control plane or etcd member: removing one (its etcd "
                           "member first) is not supported yet; only worker nodes can be removed")
    for i, group in enumerate(user.spec.node_groups):
        names = groups.get(group.name, [])
        if host not in names:
            continue
        smaller = user.model_copy(deep=True)
        mine = smaller.spec.node_groups[i]
        if mine.hosts:
            mine.hosts = [h for h in mine.hosts if h.name != host]
            if mine.count is not None:
                mine.count = len(mine.hosts)
        elif host != names[-1]:
            raise NotRemovable(f"node group {group.name} is counted (count: {len(names)}): its "
                               f"machines are numbered, so only its last one, {names[-1]}, can be "
                               "removed (lowering the count)")
        else:
            mine.count = len(names) - 1
        return smaller
    raise NotRemovable(f"{host!r} is not a node of cluster {user.name}")


def removals(old: Cluster, new: Cluster) -> list[tuple[str, str]]:
    """(field, why) for every machine a change from completed spec ``old`` to ``new`` would
    take away: `update` refuses them, so that no node leaves undrained and no etcd member
    leaves without a word. Workers leave by `kpyops delete node`, which drains them first."""
    problems: list[tuple[str, str]] = []
    o, n = old.spec, new.spec
    if (n.control_plane.count or 0) < (o.control_plane.count or 0):
        problems.append(("spec.controlPlane.count", f"{o.control_plane.count} -> {n.control_plane.count} "
                         "would take control planes and their etcd members away: not supported yet "
                         "(removing an etcd member safely comes first)"))
    if (n.etcd.members or 0) < (o.etcd.members or 0):
        problems.append(("spec.etcd.members", f"{o.etcd.members} -> {n.etcd.members} would remove "
                         "etcd members: not supported yet"))
    new_groups = {g.name: g for g in n.node_groups}
    for i, group in enumerate(o.node_groups):
        kept = new_groups.get(group.name)
        gone = [h.name for h in group.hosts if kept is None or h.name not in {k.name for k in kept.hosts}]
        fewer = (kept.count or 0) < (group.count or 0) if kept is not None else bool(group.count)
        if gone or fewer:
            who = ", ".join(gone) if gone else f"{(group.count or 0) - (kept.count or 0) if kept else group.count} machine(s)"
            problems.append((f"spec.nodeGroups[{i}]", f"node group {group.name} would lose {who} "
                             f"without draining: remove each with `kpyops delete node {old.name} NODE` "
                             "(it drains first)"))
    return problems
