"""What the kpyops_proxy role writes, rendered from specs, read back by the proxy itself."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rolerender import ROLES, Inventory, RoleRenderer

from kpyops.proxy.config import config_from_dict

ROLE = ROLES / "kpyops_proxy"


def spec(**kube_proxy) -> dict:
    return {
        "metadata": {"name": "demo"},
        "spec": {
            "controlPlane": {"count": 1},
            "nodeGroups": [{"name": "general", "count": 2}],
            "kubeProxy": kube_proxy,
        },
    }


def renderer(s: dict, group: str = "kube_node", **extra) -> RoleRenderer:
    inv = Inventory(s)
    return RoleRenderer("kpyops_proxy", inv, inv.host(group), extra)


def test_group_vars_carry_the_spec():
    inv = Inventory(
        spec(mode="ipvs", scheduler="sh", excludeCIDRs=["172.30.0.0/16"], strictARP=True,
             syncPeriod="45s", minSyncPeriod="2s")
    )  # fmt: skip
    gv = inv.group_vars
    assert gv["kpyops_proxy_mode"] == "ipvs"
    assert gv["kpyops_proxy_scheduler"] == "sh"
    assert gv["kpyops_proxy_exclude_cidrs"] == ["172.30.0.0/16"]
    assert gv["kpyops_proxy_strict_arp"] is True
    assert (gv["kpyops_proxy_sync_period"], gv["kpyops_proxy_min_sync_period"]) == ("45s", "2s")
    assert gv["kpyops_proxy_cluster_cidrs"] == ["10.244.0.0/16"]


def test_dual_stack_adds_the_ipv6_pod_cidr():
    s = spec()
    s["spec"]["networking"] = {"dualStack": {"enabled": True}}
    assert Inventory(s).group_vars["kpyops_proxy_cluster_cidrs"] == [
        "10.244.0.0/16",
        "fd00:10:244::/56",
    ]


def test_the_proxy_accepts_the_configuration_the_role_writes():
    r = renderer(spec(mode="ipvs", scheduler="wrr", excludeCIDRs=["172.30.0.0/16"]))
    config = config_from_dict(yaml.safe_load(r.render("proxy.yaml.j2")))
    host = r.variables["inventory_hostname"]
    assert config.mode == "ipvs"
    assert config.hostname == host
    assert config.ipvs.scheduler == "wrr"
    assert config.ipvs.exclude_cidrs == ("172.30.0.0/16",)
    assert (config.ipvs.sync_period, config.ipvs.min_sync_period) == (30.0, 1.0)
    assert (config.iptables.sync_period, config.iptables.min_sync_period) == (30.0, 1.0)
    assert config.cluster_cidrs == ("10.244.0.0/16",)
    assert config.kubeconfig == "/etc/kpyops/proxy.kubeconfig"
    assert config.healthz_bind_address == "0.0.0.0:10256"


def test_nftables_mode_is_the_default_and_gets_the_spec_sync_periods():
    r = renderer(spec(syncPeriod="45s", minSyncPeriod="2s"))
    config = config_from_dict(yaml.safe_load(r.render("proxy.yaml.j2")))
    assert config.mode == "nftables"
    assert (config.sync_period, config.min_sync_period) == (45.0, 2.0)  # the nftables section
    assert r.variables["kpyops_proxy_nftables_packages"] == ["nftables"]


def test_iptables_mode_configuration():
    r = renderer(spec(mode="iptables"))
    assert config_from_dict(yaml.safe_load(r.render("proxy.yaml.j2"))).mode == "iptables"


@pytest.mark.parametrize(
    ("group", "count", "lb"),
    [
        ("kube_node", 1, {"type": "local"}),
        ("kube_node", 3, {"type": "local"}),
        ("kube_control_plane", 3, {"type": "external", "address": "api.example.org"}),
        ("kube_node", 3, {"type": "external", "address": "api.example.org"}),
        ("kube_node", 1, {"type": "none"}),
    ],
)  # fmt: skip
def test_kubeconfig_reaches_the_api_server_as_the_kubelet_does(group, count, lb):
    s = spec()
    s["spec"]["controlPlane"] = {"count": count, "apiLoadBalancer": lb}
    inv = Inventory(s)
    host = inv.host(group)
    kubeconfig = yaml.safe_load(RoleRenderer("kpyops_proxy", inv, host).task_content(
        "config.yml", "config | Write the proxy's kubeconfig"))
    kubelet = yaml.safe_load(RoleRenderer("kubelet", inv, host).task_content(
        "files.yml", "Files | Write the kubelet kubeconfig"))["clusters"][0]["cluster"]["server"]
    assert kubeconfig["clusters"][0]["cluster"]["server"] == kubelet
    if lb["type"] == "external" and group == "kube_node":
        assert kubelet == "https://api.example.org:6443"
    user = kubeconfig["users"][0]
    assert user["name"] == "system:kube-proxy"
    assert user["user"]["client-certificate"] == "/etc/kubernetes/pki/kube-proxy.crt"
    assert "client-key-data" not in user["user"]


def test_kubeconfig_uses_the_proxy_identity():
    user = yaml.safe_load(renderer(spec()).task_content(
        "config.yml", "config | Write the proxy's kubeconfig"))["users"][0]
    assert user["name"] == "system:kube-proxy"
    assert user["user"]["client-certificate"] == "/etc/kubernetes/pki/kube-proxy.crt"
    assert "client-key-data" not in user["user"]


def test_unit_is_hardened_and_keeps_net_sysctls_writable():
    unit = renderer(spec()).render("kpyops-proxy.service.j2")
    lines = unit.splitlines()
    assert "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW" in lines
    assert "NoNewPrivileges=yes" in lines
    assert "ProtectSystem=strict" in lines
    assert not any(line.startswith("ProtectKernelTunables") for line in lines)
    assert "--services-dir" not in unit
    assert "--node-ip" not in unit  # API mode: the proxy reads its Node object
    # the state folder (route_localnet's old value) stays writable under ProtectSystem=strict
    assert "  --state-dir=/var/lib/kpyops/proxy \\" in lines
    assert "StateDirectory=kpyops/proxy" in lines and "StateDirectoryMode=0700" in lines
    unit = renderer(spec(), kpyops_proxy_services_dir="/srv/svc", kpyops_proxy_node_ip="10.0.0.7",
                    kpyops_proxy_node_zone="zone-a").render("kpyops-proxy.service.j2")
    assert "--services-dir=/srv/svc" in unit
    assert "--node-ip=10.0.0.7" in unit and "--node-zone=zone-a" in unit


def test_argument_specs_match_defaults_and_spec_variables():
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    required = {k for k, v in options.items() if v.get("required")}
    assert set(defaults) == set(options) - required
    assert not required & set(defaults)  # a spec-derived value never has a default
    gv = Inventory(spec()).group_vars
    assert required <= set(gv), required - set(gv)


def test_launcher_runs_the_proxy_command_only():
    text = renderer(spec()).render("kpyops-proxy.j2")
    assert text.startswith("#!/opt/kpyops/bin/python\n")
    assert "from kpyops.cli.proxy import command" in text
    compile(text, "kpyops-proxy", "exec")


def test_wheelhouse_script_is_valid_python():
    compile(Path(ROLE / "files" / "wheelhouse.py").read_text(), "wheelhouse.py", "exec")
