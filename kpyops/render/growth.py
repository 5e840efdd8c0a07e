"""Whether a new inventory only adds nodes to an old one (kubespray's scale.yml case).

When it does, the hosts already in the cluster need nothing but what names the newcomers: their
names in /etc/hosts and routes to their pod ranges (playbooks/neighbours.yml); everything else
they run would change nothing. So `update` converges cluster.yml on the new hosts only, then
runs that playbook on the others, instead of running the whole playbook on every host. The
same test, old and new swapped, tells that a removal takes out one node and nothing else.

"Only adds nodes" is decided on the rendered inventory, the very input of the playbooks, not
on the spec: every file but hosts.yml is byte for byte the same, every old host keeps its
variables and groups, and each new host is in the worker group (kube_node) only. Roles read
the set of hosts from the inventory alone (groups and host variables), so a role whose output
on an old host depends on the node list would show up here as a changed file, not be missed.
"""

from __future__ import annotations

import yaml

HOSTS_FILE = "hosts.yml"
NODE_GROUP = "kube_node"  # the only group a newcomer may join (control planes and etcd: no)


def _groups(inventory: dict) -> dict[str, set[str]]:
    """group -> its hosts (direct members; the children groups of k8s_cluster name none)."""
    children = inventory["all"].get("children") or {}
    return {g: set((body or {}).get("hosts") or {}) for g, body in children.items()}


def _skeleton(inventory: dict) -> dict:
    """The inventory without its hosts: variables and the shape of the groups."""
    children = inventory["all"].get("children") or {}
    return {"vars": inventory["all"].get("vars"),
            "children": {g: {k: v for k, v in (body or {}).items() if k != "hosts"}
                         for g, body in children.items()}}


def added_nodes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """The hosts ``new`` adds to ``old`` (inventory files by relative path), when adding worker
    nodes is all it does; else an empty list (no host added, or something else changed)."""
    if set(old) != set(new) or any(old[f] != new[f] for f in old if f != HOSTS_FILE):
        return []
    before, after = yaml.safe_load(old[HOSTS_FILE]), yaml.safe_load(new[HOSTS_FILE])
    if _skeleton(before) != _skeleton(after):
        return []
    old_hosts, new_hosts = before["all"].get("hosts") or {}, after["all"].get("hosts") or {}
    if any(new_hosts.get(h) != v for h, v in old_hosts.items()):
        return []  # an old host removed or changed
    added = sorted(set(new_hosts) - set(old_hosts))
    old_groups, new_groups = _groups(before), _groups(after)
    for group in new_groups:
        joined = new_groups[group] - old_groups.get(group, set())
        if old_groups.get(group, set()) - new_groups[group]:
            return []  # a host left a group
        if joined and (group != NODE_GROUP or not joined <= set(added)):
            return []  # a newcomer in another group, or an old host changed groups
    if any(h not in new_groups.get(NODE_GROUP, set()) for h in added):
        return []
    return added
