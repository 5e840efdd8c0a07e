"""What the kubelet role writes (KubeletConfiguration, unit, kubeconfig), from specs."""

from __future__ import annotations

import ipaddress

import pytest
import yaml
from k8sref import kubelet_config_problems
from rolerender import Inventory, RoleRenderer

from kpyops.spec.complete import complete
from kpyops.spec.errors import SpecError
from kpyops.spec.model import Cluster


def spec(**over) -> dict:
    s = {"metadata": {"name": "demo"}, "spec": {"controlPlane": {"count": 3}}}
    s["spec"].update(over)
    return s


GROUPS = [
    {"name": "general", "count": 1},
    {"name": "cpu", "count": 1, "labels": {"tier": "latency"},
     "taints": [{"key": "dedicated", "value": "cpu", "effect": "NoSchedule"}],
     "kubelet": {"cpuManagerPolicy": "static", "reservedSystemCPUs": "0-1",
                 "topologyManagerPolicy": "single-numa-node", "maxPods": 60,
                 "evictionSoft": {"memory.available": "500Mi"},
                 "evictionSoftGracePeriod": {"memory.available": "1m30s"}}},
]


def config_for(s: dict, host: str | None = None, group: str = "kube_node", index: int = 0):
    inv = Inventory(s)
    host = host or inv.host(group, index)
    r = RoleRenderer("kubelet", inv, host)
    return r, yaml.safe_load(r.render("kubelet-config.yaml.j2"))


ALL_HOSTS = ["demo-cp-1", "demo-general-1", "demo-cpu-1"]


@pytest.mark.parametrize("host", ALL_HOSTS)
def test_every_key_and_enum_is_in_the_reference(host):
    _, cfg = config_for(spec(nodeGroups=GROUPS), host=host)
    assert cfg["apiVersion"] == "kubelet.config.k8s.io/v1beta1" and cfg["kind"] == "KubeletConfiguration"
    assert kubelet_config_problems(cfg) == []


def test_reference_check_catches_unknown_keys_and_bad_enums():
    _, cfg = config_for(spec())
    bad = dict(cfg, cpuManagerPolicy="Static", noSuchField=1,
               authentication={**cfg["authentication"], "anonymus": {}})
    problems = kubelet_config_problems(bad)
    assert "unknown key noSuchField" in problems
    assert "unknown key authentication.anonymus" in problems
    assert any(p.startswith("cpuManagerPolicy='Static'") for p in problems)


def test_cis_node_checks():
    """CIS 4.2.x on the rendered configuration (every security field written explicitly)."""
    _, k = config_for(spec())
    checks = {
        "4.2.1 anonymous off": k["authentication"]["anonymous"]["enabled"] is False,
        "4.2.2 authorization Webhook": k["authorization"]["mode"] == "Webhook",
        "webhook authentication on": k["authentication"]["webhook"]["enabled"] is True,
        "4.2.3 client CA": k["authentication"]["x509"]["clientCAFile"] == "/etc/kubernetes/pki/ca.crt",
        "4.2.4 read-only port 0": k["readOnlyPort"] == 0,
        "4.2.5 streaming idle timeout set": k["streamingConnectionIdleTimeout"] not in ("0", "0s"),
        "4.2.6 iptables util chains": k["makeIPTablesUtilChains"] is True,
        "4.2.8 event QPS set": k["eventRecordQPS"] >= 0,
        "4.2.9 serving cert via TLS bootstrap": k["serverTLSBootstrap"] is True,
        "4.2.10 rotate certificates": k["rotateCertificates"] is True,
        "4.2.12 strong ciphers": all("ECDHE" in c for c in k["tlsCipherSuites"]),
        "4.2.13 pod pids limit > 0": k["podPidsLimit"] > 0,
        "4.2.14 seccomp default": k["seccompDefault"] is True,
        # local clusters' hosts share this machine's kernel: the one CIS concession, in the spec
        "protect kernel defaults off only on local": k["protectKernelDefaults"] is False,
        "cgroup v1 allowed only on local": k["failCgroupV1"] is False,
        "systemd cgroup driver": k["cgroupDriver"] == "systemd",
        "healthz on localhost": k["healthzBindAddress"] == "127.0.0.1",
    }
    assert [name for name, ok in checks.items() if not ok] == []
    metal = spec(cloud="baremetal",
                 controlPlane={"hosts": [{"name": "cp", "address": "192.0.2.10"}]},
                 nodeGroups=[{"name": "w", "hosts": [{"name": "w1", "address": "192.0.2.30"}]}])
    _, k = config_for(metal, host="w1")
    assert k["protectKernelDefaults"] is True and "failCgroupV1" not in k


@pytest.mark.parametrize("service_cidr", ["10.96.0.0/12", "172.20.0.0/16", "10.100.0.0/24"])
def test_cluster_dns_is_the_tenth_service_address(service_cidr):
    _, cfg = config_for(spec(networking={"serviceCIDR": service_cidr}))
    want = str(ipaddress.IPv4Network(service_cidr).network_address + 10)
    assert cfg["clusterDNS"] == [want]
    assert cfg["clusterDomain"] == "cluster.local"


def test_cluster_dns_from_the_spec_and_domain():
    _, cfg = config_for(spec(dns={"clusterDNS": "10.96.0.53"},
                             networking={"clusterDomain": "k8s.example"}))
    assert cfg["clusterDNS"] == ["10.96.0.53"] and cfg["clusterDomain"] == "k8s.example"


def test_cluster_dns_outside_the_service_cidr_is_refused():
    with pytest.raises(SpecError) as err:
        complete(Cluster.model_validate(spec(dns={"clusterDNS": "10.200.0.10"})))
    assert "spec.dns.clusterDNS" in str(err.value) and "outside serviceCIDR" in str(err.value)


def test_node_group_overrides_reach_only_that_group():
    s = spec(nodeGroups=GROUPS, kubelet={"maxPods": 200})
    _, general = config_for(s, host="demo-general-1")
    _, cpu = config_for(s, host="demo-cpu-1")
    _, cp = config_for(s, host="demo-cp-1")
    assert general["cpuManagerPolicy"] == "none" and general["maxPods"] == 200
    assert cpu["cpuManagerPolicy"] == "static" and cpu["maxPods"] == 60
    assert cpu["reservedSystemCPUs"] == "0-1" and cpu["topologyManagerPolicy"] == "single-numa-node"
    assert cpu["evictionSoft"] == {"memory.available": "500Mi"}
    assert "evictionSoft" not in general  # empty maps are left out
    assert cpu["registerWithTaints"] == [{"key": "dedicated", "value": "cpu", "effect": "NoSchedule"}]
    assert cp["registerWithTaints"][0]["key"] == "node-role.kubernetes.io/control-plane"
    assert cp["maxPods"] == 200
    # the cluster-wide reservation and eviction defaults are kept where not overridden
    assert cpu["kubeReserved"] == {"cpu": "100m", "memory": "256Mi"}
    assert general["evictionHard"]["memory.available"] == "100Mi"


def test_static_policy_without_reserved_cpus_is_refused():
    s = spec(kubelet={"cpuManagerPolicy": "static", "kubeReserved": {"memory": "1Gi"},
                      "systemReserved": {"memory": "1Gi"}})
    with pytest.raises(Exception, match="reservedSystemCPUs"):
        Cluster.model_validate(s)


def test_unit_file_runs_the_config_file_without_hostname_override():
    inv = Inventory(spec(nodeGroups=GROUPS))
    r = RoleRenderer("kubelet", inv, "demo-cpu-1")
    unit = r.render("kubelet.service.j2")
    assert "--config=/var/lib/kubelet/config.yaml" in unit
    assert "--kubeconfig=/etc/kubernetes/kubelet.conf" in unit
    assert "--node-labels=tier=latency" in unit
    assert f"--node-ip={inv.host_vars['demo-cpu-1']['kpyops_address']}" in unit
    assert "hostname-override" not in unit  # CIS 4.2.7
    assert "Restart=always" in unit


@pytest.mark.parametrize(("lb", "host", "want"), [
    ({"type": "none"}, "demo-node-1", "https://{cp1}:6443"),
    ({"type": "local", "port": 6443}, "demo-node-1", "https://127.0.0.1:6443"),
    ({"type": "external", "address": "api.example.com", "port": 443}, "demo-node-1", "https://api.example.com:443"),
    ({"type": "external", "address": "api.example.com", "port": 443}, "demo-cp-2", "https://127.0.0.1:6443"),
])
def test_kubeconfig_reaches_the_api_the_spec_says(lb, host, want):
    inv = Inventory(spec(controlPlane={"count": 3, "apiLoadBalancer": lb}))
    r = RoleRenderer("kubelet", inv, host)
    doc = yaml.safe_load(r.task_content("files.yml", "Files | Write the kubelet kubeconfig"))
    cp1 = inv.host_vars["demo-cp-1"]["kpyops_address"]
    assert doc["clusters"][0]["cluster"]["server"] == want.format(cp1=cp1)
    assert doc["users"][0]["name"] == f"system:node:{host}"
    assert doc["users"][0]["user"]["client-certificate"] == "/etc/kubernetes/pki/kubelet.crt"
