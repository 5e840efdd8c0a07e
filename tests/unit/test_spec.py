"""The spec model and completion: defaults, and every bad-input rule naming its field."""

from __future__ import annotations

import ipaddress

import pytest

from kpyops.spec import SpecError, complete, dumps, loads, parse


def spec(**overrides) -> dict:
    data = {"apiVersion": "kpyops.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "t"},
            "spec": {}}
    data["spec"].update(overrides)
    return data


def problems(data) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as err:
        complete(parse(data))
    return err.value.problems


def test_minimal_spec_completes_every_default():
    c = complete(parse(spec()))
    s = c.spec
    assert s.cloud == "local"
    assert [h.name for h in s.control_plane.hosts] == ["t-cp-1"]
    assert [h.name for h in s.node_groups[0].hosts] == ["t-node-1", "t-node-2"]
    assert s.etcd.members == 1
    assert s.dns.cluster_dns == ipaddress.IPv4Address("10.96.0.10")
    assert s.kube_proxy.mode == "nftables" and s.kube_proxy.scheduler == "rr"  # the default
    assert s.kubelet.cpu_manager_policy == "none"
    assert s.node_groups[0].kubelet.eviction_hard["memory.available"] == "100Mi"
    assert set(s.artifacts.items) == {"etcd", "kubelet", "kubectl", "containerd", "runc", "cni-plugins"}
    # local hosts get fixed addresses inside the cluster's own subnet
    assert all(h.address in s.local.subnet for h in s.control_plane.hosts)


def test_completion_is_idempotent():
    once = complete(parse(spec(controlPlane={"count": 3})))
    assert dumps(complete(once)) == dumps(once)


def test_etcd_defaults_to_control_plane_count():
    c = complete(parse(spec(controlPlane={"count": 3})))
    assert c.spec.etcd.members == 3


def test_node_group_kubelet_override_is_merged():
    c = complete(parse(spec(kubelet={"cpuManagerPolicy": "none"}, nodeGroups=[
        {"name": "big", "count": 1, "kubelet": {"cpuManagerPolicy": "static",
                                                 "reservedSystemCPUs": "0"}}])))
    k = c.spec.node_groups[0].kubelet
    assert k.cpu_manager_policy == "static" and k.reserved_system_cpus == "0"
    assert k.max_pods == 110  # the cluster-wide default is still there
    assert c.spec.kubelet.cpu_manager_policy == "none"


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"etcd": {"members": 2}}, "spec.etcd.members", "2 etcd members"),
        ({"etcd": {"members": 4}}, "spec.etcd.members", "even"),
        ({"etcd": {"members": 9}}, "spec.etcd.members", "use 1, 3, 5 or 7"),
        ({"networking": {"podCIDR": "10.96.0.0/16"}}, "spec.networking", "overlaps"),
        ({"networking": {"serviceCIDR": "10.96.0.0/28"}}, "spec.networking.serviceCIDR", "too small"),
        ({"kubeProxy": {"scheduler": "fifo"}}, "spec.kubeProxy.scheduler", "unknown IPVS scheduler"),
        ({"kubelet": {"cpuManagerPolicy": "dynamic"}}, "spec.kubelet.cpuManagerPolicy", "'none' or 'static'"),
        ({"controlPlane": {"count": 2}}, "spec.controlPlane.count", "1, 3 or 5"),
        ({"dns": {"autopath": True}}, "spec.dns", "pods: verified"),
        ({"dns": {"clusterDNS": "10.200.0.10"}}, "spec.dns.clusterDNS", "outside serviceCIDR"),
        ({"kubeProxy": {"mode": "userspace"}}, "spec.kubeProxy.mode", "'nftables', 'iptables' or 'ipvs'"),
        ({"bogus": 1}, "spec.bogus", "unknown field"),
        ({"artifacts": {"items": {"etcd": {"version": "3.5.0"}}}}, "spec.artifacts.items.etcd.version",
         "but spec.etcd.version is"),
        ({"kubernetesVersion": "1.35.4", "artifacts": {"items": {"kubelet": {"version": "1.34.1"}}}},
         "spec.artifacts.items.kubelet.version", "but spec.kubernetesVersion is 1.35.4"),
    ],
)
def test_bad_input_names_field_and_rule(overrides, field, words):
    found = problems(spec(**overrides))
    assert any(f == field and words in rule for f, rule in found), found


def test_duplicate_host_names_and_addresses_are_refused():
    cp = [{"name": "a", "address": "192.0.2.1"}]
    dup_name = spec(cloud="baremetal", controlPlane={"hosts": cp},
                    nodeGroups=[{"name": "n", "hosts": [{"name": "a", "address": "192.0.2.2"}]}])
    assert any("duplicate host name 'a'" in r for _, r in problems(dup_name))
    dup_addr = spec(cloud="baremetal", controlPlane={"hosts": cp},
                    nodeGroups=[{"name": "n", "hosts": [{"name": "b", "address": "192.0.2.1"}]}])
    found = problems(dup_addr)
    assert found[0][0] == "spec.nodeGroups[0].hosts"
    assert "duplicate host address 192.0.2.1" in found[0][1]


def test_baremetal_needs_hosts():
    assert problems(spec(cloud="baremetal"))[0][0] == "spec.controlPlane.hosts"


def test_more_etcd_members_than_hosts_is_refused():
    found = problems(spec(etcd={"members": 3}))
    assert found == [("spec.etcd.members", "3 members but only 1 hosts to place them on")]


def test_yaml_round_trip_keeps_wire_names():
    text = dumps(complete(parse(spec())))
    assert "podCIDR:" in text and "reservedSystemCPUs:" in text and "excludeCIDRs:" in text
    assert dumps(loads(text)) == text


def test_invalid_yaml_is_a_spec_error():
    with pytest.raises(SpecError, match="not valid YAML"):
        loads("spec: [")


def test_proxy_mode_defaults_per_cloud_and_explicit_choice_wins():
    assert complete(parse(spec(kubeProxy={"mode": "ipvs"}))).spec.kube_proxy.mode == "ipvs"
    metal = spec(cloud="baremetal", controlPlane={"hosts": [{"name": "a", "address": "192.0.2.1"}]},
                 nodeGroups=[{"name": "n", "count": 0}])
    assert complete(parse(metal)).spec.kube_proxy.mode == "nftables"  # upstream's recommended
    assert complete(parse(spec())).spec.kube_proxy.mode == "nftables"
    assert complete(parse(spec(kubeProxy={"mode": "iptables"}))).spec.kube_proxy.mode == "iptables"
