"""Inventory rendering: groups, host variables, group_vars from the completed spec."""

from __future__ import annotations

from pathlib import Path

import yaml

from kpyops.render.inventory import render_inventory
from kpyops.spec import complete, loads, parse

ROOT = Path(__file__).resolve().parents[2]


def rendered(data: dict, **kw) -> dict:
    files = render_inventory(complete(parse(data)), **kw)
    return {k: yaml.safe_load(v) for k, v in files.items()}


def base(**spec) -> dict:
    return {"metadata": {"name": "r"}, "spec": spec}


def test_groups_and_hosts_of_a_local_cluster():
    inv = rendered(base(controlPlane={"count": 3}), ssh_key_file="/k", known_hosts_file="/kh")
    hosts = inv["hosts.yml"]["all"]
    assert sorted(hosts["children"]["kube_control_plane"]["hosts"]) == ["r-cp-1", "r-cp-2", "r-cp-3"]
    assert sorted(hosts["children"]["etcd"]["hosts"]) == ["r-cp-1", "r-cp-2", "r-cp-3"]
    assert sorted(hosts["children"]["kube_node"]["hosts"]) == ["r-node-1", "r-node-2"]
    assert hosts["children"]["k8s_cluster"]["children"] == {"kube_control_plane": {}, "kube_node": {}}
    assert hosts["vars"]["ansible_ssh_private_key_file"] == "/k"
    assert "UserKnownHostsFile=/kh" in hosts["vars"]["ansible_ssh_common_args"]
    node = hosts["hosts"]["r-node-1"]
    assert node["kpyops_node_group"] == "node" and node["ansible_host"] == node["kpyops_address"]


def test_group_vars_come_from_the_spec():
    inv = rendered(base(cloud="local", kubeProxy={"mode": "iptables"},
                        networking={"serviceCIDR": "10.100.0.0/16"}))
    cluster = inv["group_vars/all/cluster.yml"]
    assert cluster["kpyops_cluster_dns"] == "10.100.0.10"
    assert cluster["kpyops_node_groups"]["node"]["kubelet"]["cpuManagerPolicy"] == "none"
    hosts = inv["group_vars/all/hosts.yml"]
    assert hosts["kernel_modules_ipvs"] is False
    # a local cluster shares the kernel: nothing kernel-wide
    assert hosts["kernel_modules_load"] is False and hosts["bootstrap_swapoff"] is False


def test_local_clusters_run_kubelet_with_their_concessions_in_the_spec():
    """Local hosts run the real binaries: no skip switches in group_vars; what they need
    that production does not (cgroup v1 allowed, the local registry mirror) is in the
    completed spec, and from there in group_vars, nowhere else."""
    local = rendered(base(cloud="local"))
    # the proxy watches the API server on local clusters too (no directory source)
    assert local["group_vars/all/cloud.yml"] == {}
    assert all(g["kubelet"]["failCgroupV1"] is False for g in local["group_vars/all/cluster.yml"]["kpyops_node_groups"].values())
    mirrors = local["group_vars/all/containerd.yml"]["kpyops_container_runtime"]["registryMirrors"]
    assert list(mirrors) == ["registry.k8s.io"] and mirrors["registry.k8s.io"][0].endswith(":5000")
    metal = rendered(base(cloud="baremetal",
                          controlPlane={"hosts": [{"name": "cp", "address": "192.0.2.10"}]},
                          nodeGroups=[{"name": "w", "hosts": [{"name": "w1", "address": "192.0.2.30"}]}]))
    assert metal["group_vars/all/cloud.yml"] == {}
    assert all(g["kubelet"]["failCgroupV1"] is None for g in metal["group_vars/all/cluster.yml"]["kpyops_node_groups"].values())
    assert metal["group_vars/all/containerd.yml"]["kpyops_container_runtime"]["registryMirrors"] == {}


def test_dedicated_etcd_hosts_and_bastion():
    data = base(cloud="baremetal",
                controlPlane={"hosts": [{"name": "cp", "address": "192.0.2.10"}]},
                etcd={"hosts": [{"name": f"e{i}", "address": f"192.0.2.2{i}"} for i in range(3)]},
                nodeGroups=[{"name": "w", "hosts": [{"name": "w1", "address": "192.0.2.30",
                                                     "sshAddress": "198.51.100.30"}]}],
                ssh={"user": "admin", "bastion": {"host": "bastion.example.org"}})
    inv = rendered(data)["hosts.yml"]["all"]
    assert sorted(inv["children"]["etcd"]["hosts"]) == ["e0", "e1", "e2"]
    assert inv["hosts"]["w1"]["ansible_host"] == "198.51.100.30"
    assert inv["hosts"]["w1"]["kpyops_address"] == "192.0.2.30"
    assert inv["vars"]["ansible_user"] == "admin"
    assert "ProxyJump=root@bastion.example.org:22" in inv["vars"]["ansible_ssh_common_args"]


def test_sample_inventory_group_vars_match_its_spec():
    """inventory/sample's group_vars are rendered from examples/baremetal-cluster.yaml (kept
    out of the inventory folder: Ansible would read it as an inventory source)."""
    sample = ROOT / "inventory" / "sample"
    files = render_inventory(complete(loads((ROOT / "examples" / "baremetal-cluster.yaml").read_text())))
    for rel, text in files.items():
        if rel.startswith("group_vars/"):
            assert (sample / rel).read_text() == text, f"regenerate inventory/sample/{rel}"


def test_ansible_warnings_are_collected_once():
    from kpyops.run.ansible import ansible_warnings, parse_recap

    lines = ['ok: [a] => {', '    "msg": "WARNING: kernel modules not available on a',
             '(kernel 6): ip_vs.\\nLoading is off."', '}', 'ok: [b] => {',
             '    "msg": "WARNING: kernel modules not available on a', '(kernel 6): ip_vs.\\nLoading is off."', '}',
             'PLAY RECAP ****', 'a   : ok=3    changed=1    unreachable=0    failed=0    ',
             'b   : ok=3    changed=0    unreachable=0    failed=0    ']
    assert ansible_warnings(lines) == ["WARNING: kernel modules not available on a (kernel 6): ip_vs. Loading is off."]
    assert parse_recap(lines) == {"a": {"ok": 3, "changed": 1, "unreachable": 0, "failed": 0},
                                  "b": {"ok": 3, "changed": 0, "unreachable": 0, "failed": 0}}


def test_one_place_knows_what_a_cloud_can_do():
    """Every cloud the spec names has its capabilities, and no template branches on which
    cloud it is: the templates read ``caps``."""
    import re
    import typing

    from kpyops.clouds import get_cloud
    from kpyops.clouds.capabilities import CLOUDS
    from kpyops.spec.model import ClusterSpec
    from kpyops.state import LocalStore

    names = typing.get_args(ClusterSpec.model_fields["cloud"].annotation)
    assert set(names) == set(CLOUDS)
    for name in names:
        assert get_cloud(name, LocalStore("/nonexistent")).capabilities == CLOUDS[name]
    templates = ROOT / "templates" / "inventory"
    for path in templates.rglob("*.j2"):
        assert not re.search(r"spec\.cloud\s*(==|!=|in\b)|if spec\.cloud", path.read_text()), path
