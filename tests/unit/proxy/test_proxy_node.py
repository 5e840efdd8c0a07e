"""nodePortAddresses keywords, the node's zone and primary IPs, route_localnet state."""

import json
from pathlib import Path

import pytest

from kpyops.proxy.config import ConfigError, config_from_dict
from kpyops.proxy.daemon import (
    health_check_addresses,
    iptables_dataplane,
    localhost_node_ports,
    node_config,
)
from kpyops.proxy.localnet import STATE_FILE, enable_route_localnet, restore_route_localnet
from kpyops.proxy.node import (
    NodeInfo,
    fetch_node_info,
    node_info_from_object,
    resolve_node_port_addresses,
)

REFERENCE = Path(__file__).resolve().parents[3] / ".." / "shared" / "reference"
HEAD = {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration"}
NODE = {
    "metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "zone-a"}},
    "status": {
        "addresses": [
            {"type": "Hostname", "address": "n1"},
            {"type": "ExternalIP", "address": "203.0.113.5"},
            {"type": "InternalIP", "address": "10.0.0.5"},
            {"type": "InternalIP", "address": "fd00::5"},
            {"type": "InternalIP", "address": "10.0.0.6"},
        ]
    },
}


def cfg(**fields):
    return config_from_dict({**HEAD, "mode": "iptables", **fields})


def test_every_reference_keyword_is_accepted():
    ref = json.loads((REFERENCE / "kube-proxy-config-v1alpha1.json").read_text())
    for keyword in ref["enums"]["nodePortAddresses_keywords"]["values"]:
        loaded = cfg(nodePortAddresses=[keyword]).node_port_addresses
        assert loaded == (() if keyword == "all" else (keyword,))


def test_unknown_node_port_address_refused_with_its_index():
    with pytest.raises(ConfigError) as err:
        cfg(nodePortAddresses=["10.0.0.0/8", "primary-ip"])
    assert err.value.path == "nodePortAddresses[1]"
    assert "'primary-ip' is neither a CIDR nor one of the keywords primary, localhost, all" in str(
        err.value
    )


def test_node_object_gives_zone_and_first_internal_ip_per_family():
    info = node_info_from_object(NODE)
    assert info == NodeInfo("zone-a", ("10.0.0.5", "fd00::5"))
    external_only = {"status": {"addresses": [{"type": "ExternalIP", "address": "1.2.3.4"}]}}
    assert node_info_from_object(external_only) == NodeInfo("", ("1.2.3.4",))


def test_fetch_node_info_retries_then_gives_up_empty():
    calls = []

    def failing(path):
        calls.append(path)
        raise OSError("connection refused")

    assert fetch_node_info(failing, "n1", attempts=3, delay=0) == NodeInfo()
    assert calls == ["/api/v1/nodes/n1"] * 3
    assert fetch_node_info(lambda path: NODE, "n1").zone == "zone-a"


def test_keywords_resolved_to_cidrs():
    node = NodeInfo("z", ("10.0.0.5", "fd00::5"))
    resolved = resolve_node_port_addresses(("primary", "localhost", "192.168.0.0/16"), node)
    assert resolved == ("10.0.0.5/32", "fd00::5/128", "127.0.0.0/8", "::1/128", "192.168.0.0/16")
    with pytest.raises(ConfigError, match="'primary' needs the node's IPs"):
        resolve_node_port_addresses(("primary",), NodeInfo())


def test_primary_node_ports_in_iptables_rules_and_bind_address_is_primary():
    config = node_config(cfg(nodePortAddresses=["primary"]), NodeInfo("zone-b", ("10.0.0.5",)))
    assert config.node_port_addresses == ("10.0.0.5/32",) and config.node_zone == "zone-b"
    options = iptables_dataplane(config, 4).options
    assert options.node_port_cidrs == ("10.0.0.5/32",) and options.zone == "zone-b"
    bound = node_config(cfg(nodePortAddresses=["primary"], bindAddress="10.9.9.9"), NodeInfo())
    assert bound.node_port_addresses == ("10.9.9.9/32",)


def test_route_localnet_original_value_kept_across_restarts_and_put_back(tmp_path):
    sysctl = tmp_path / "route_localnet"
    sysctl.write_text("0\n")
    state = tmp_path / "state"
    assert enable_route_localnet(state, sysctl) is True
    assert sysctl.read_text() == "1\n" and (state / STATE_FILE).read_text() == "0\n"
    sysctl.write_text("0\n")  # someone reset it; the proxy restarts and sets it again
    assert enable_route_localnet(state, sysctl) is True
    assert (state / STATE_FILE).read_text() == "0\n"
    assert restore_route_localnet(state, sysctl) == "0"
    assert sysctl.read_text() == "0\n" and not (state / STATE_FILE).exists()
    assert restore_route_localnet(state, sysctl) is None  # second cleanup: nothing to do


def test_route_localnet_already_on_is_left_alone(tmp_path):
    sysctl = tmp_path / "route_localnet"
    sysctl.write_text("1\n")
    assert enable_route_localnet(tmp_path / "state", sysctl) is False
    assert not (tmp_path / "state").exists()
    assert restore_route_localnet(tmp_path / "state", sysctl) is None
    assert sysctl.read_text() == "1\n"


def test_route_localnet_only_when_node_ports_answer_on_localhost():
    def wants(**fields):
        return localhost_node_ports(node_config(cfg(**fields), NodeInfo("", ("10.0.0.5",))))

    assert wants() and wants(nodePortAddresses=["primary", "localhost"])
    assert wants(nodePortAddresses=["127.0.0.1/32"])
    assert not wants(nodePortAddresses=["primary"])
    assert not wants(iptables={"localhostNodePorts": False})
    assert not wants(clusterCIDR="fd00:244::/64")


def test_health_check_servers_listen_where_node_ports_answer(monkeypatch):
    import kpyops.proxy.ipvs.dataplane as ipvs_dataplane

    local = ["10.0.0.5", "127.0.0.1", "192.168.1.9", "fe80::1", "fd00::5"]
    monkeypatch.setattr(ipvs_dataplane, "local_addresses", lambda netns, exclude: local)
    assert health_check_addresses(node_config(cfg(), NodeInfo())) == ["0.0.0.0"]
    primary = node_config(
        cfg(nodePortAddresses=["primary", "localhost"]), NodeInfo("", ("10.0.0.5",))
    )
    assert health_check_addresses(primary) == ["10.0.0.5", "127.0.0.1"]
