"""Which inventory changes only add worker nodes: rendered from real specs, every other change
(a setting, a control plane, a renamed or removed host) is not one."""

from __future__ import annotations

import copy

import pytest

from kpyops.render.growth import added_nodes
from kpyops.render.inventory import render_inventory
from kpyops.spec import complete, parse

BASE = {
    "cloud": "baremetal",
    "controlPlane": {"hosts": [{"name": "cp1", "address": "192.0.2.11"}]},
    "nodeGroups": [
        {"name": "workers", "hosts": [{"name": "w1", "address": "192.0.2.21"}]},
        {"name": "gpu", "hosts": [{"name": "g1", "address": "192.0.2.31"}]},
    ],
}


def files(change=None) -> dict[str, str]:
    spec = copy.deepcopy(BASE)
    if change:
        change(spec)
    return render_inventory(complete(parse({"apiVersion": "kpyops.io/v1alpha1", "kind": "Cluster",
                                            "metadata": {"name": "grow"}, "spec": spec})))


def add_worker(name: str, address: str, group: int = 0):
    return lambda s: s["nodeGroups"][group]["hosts"].append({"name": name, "address": address})


def test_nodes_added_to_groups_are_found():
    assert added_nodes(files(), files(add_worker("w2", "192.0.2.22"))) == ["w2"]

    def two(s):
        add_worker("w2", "192.0.2.22")(s)
        add_worker("g2", "192.0.2.32", group=1)(s)

    assert added_nodes(files(), files(two)) == ["g2", "w2"]


@pytest.mark.parametrize("change", [
    None,  # nothing added
    lambda s: s.setdefault("kubelet", {}).update(maxPods=55),  # a setting
    lambda s: (add_worker("w2", "192.0.2.22")(s), s.setdefault("kubelet", {}).update(maxPods=55)),
    lambda s: s["controlPlane"]["hosts"].extend([{"name": "cp2", "address": "192.0.2.12"},
                                                 {"name": "cp3", "address": "192.0.2.13"}]),
    lambda s: s["nodeGroups"][0]["hosts"].__setitem__(0, {"name": "w1", "address": "192.0.2.99"}),
    lambda s: s["nodeGroups"][0]["hosts"].__setitem__(0, {"name": "w9", "address": "192.0.2.21"}),
    lambda s: s["nodeGroups"][1].update(hosts=[{"name": "g1", "address": "192.0.2.31"},
                                               {"name": "g2", "address": "192.0.2.32"}],
                                        labels={"gpu": "yes"}),
    lambda s: s.__setitem__("nodeGroups", s["nodeGroups"][:1]),  # a group (and its host) gone
], ids=["nothing", "setting", "node-and-setting", "control-plane", "address", "renamed",
        "node-and-label", "group-removed"])
def test_anything_else_is_not_only_added_nodes(change):
    assert added_nodes(files(), files(change)) == []


def test_a_host_moved_to_another_group_is_not_an_addition():
    old, new = files(), files()
    new["hosts.yml"] = new["hosts.yml"].replace("kpyops_node_group: workers", "kpyops_node_group: gpu")
    assert added_nodes(old, new) == []
    assert added_nodes(old, {**old, "extra.yml": "---\n"}) == []
