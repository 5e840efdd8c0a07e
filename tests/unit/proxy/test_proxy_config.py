import json
from pathlib import Path

import pytest

from kpyops.proxy import config_fields
from kpyops.proxy.config import ConfigError, config_from_dict, load_config, parse_duration

REFERENCE = Path(__file__).resolve().parents[3] / ".." / "shared" / "reference"
HEAD = {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration"}


def test_embedded_fields_match_reference():
    ref = json.loads((REFERENCE / "kube-proxy-config-v1alpha1.json").read_text())
    assert {k: v.get("nested") for k, v in ref["fields"].items()} == config_fields.FIELDS
    assert {
        t: {k: v.get("nested") for k, v in tv["fields"].items()} for t, tv in ref["types"].items()
    } == config_fields.TYPES
    assert list(config_fields.MODES) == ref["enums"]["mode"]["values"]


def test_defaults_like_kube_proxy_with_nftables_mode():
    cfg = config_from_dict(dict(HEAD))
    assert cfg.mode == "nftables"
    assert (cfg.sync_period, cfg.min_sync_period) == (30.0, 1.0)  # the nftables section's
    assert (cfg.nftables.masquerade_bit, cfg.nftables.masquerade_all) == (14, False)
    assert cfg.healthz_bind_address == "0.0.0.0:10256"
    assert cfg.metrics_bind_address == "127.0.0.1:10249"
    assert cfg.ipvs.scheduler == "rr"
    assert cfg.ipvs.sync_period == 30.0
    assert cfg.iptables.masquerade_bit == 14
    assert cfg.iptables.min_sync_period == 1.0
    assert cfg.conntrack.tcp_established_timeout == 86400.0
    assert cfg.node_port_addresses == ()


def test_nftables_section(tmp_path):
    cfg = config_from_dict(
        {**HEAD, "mode": "nftables",
         "nftables": {"masqueradeBit": 13, "masqueradeAll": True, "syncPeriod": "45s",
                      "minSyncPeriod": "250ms"}}
    )  # fmt: skip
    assert cfg.nftables.masquerade_bit == 13 and cfg.nftables.masquerade_all
    assert (cfg.sync_period, cfg.min_sync_period) == (45.0, 0.25)
    with pytest.raises(ConfigError, match=r"nftables\.masqueradeBit"):
        config_from_dict({**HEAD, "nftables": {"masqueradeBit": 40}})
    with pytest.raises(ConfigError, match=r"nftables\.masqueradeAl"):
        config_from_dict({**HEAD, "nftables": {"masqueradeAl": True}})


def test_full_file(tmp_path):
    f = tmp_path / "kp.yaml"
    f.write_text(
        """
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
hostnameOverride: Node-1
clusterCIDR: 10.244.0.0/16,fd00::/64
nodePortAddresses: [10.0.0.0/8]
iptables: {syncPeriod: 1m30s, minSyncPeriod: 500ms, masqueradeBit: 15}
ipvs: {scheduler: wrr, excludeCIDRs: [10.9.0.0/16], strictARP: true}
conntrack: {maxPerCore: 0, tcpCloseWaitTimeout: 1h0m0s}
clientConnection: {kubeconfig: /etc/kp.conf, qps: 5}
logging: {vmodule: [{filePattern: "x*", verbosity: 2}]}
"""
    )
    cfg = load_config(f)
    assert cfg.mode == "iptables"
    assert cfg.hostname == "node-1"
    assert cfg.cluster_cidrs == ("10.244.0.0/16", "fd00::/64")
    assert cfg.sync_period == 90.0
    assert cfg.min_sync_period == 0.5
    assert cfg.iptables.masquerade_bit == 15
    assert cfg.ipvs.scheduler == "wrr"
    assert cfg.ipvs.exclude_cidrs == ("10.9.0.0/16",)
    assert cfg.conntrack.max_per_core == 0
    assert cfg.kubeconfig == "/etc/kp.conf"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"modee": "ipvs"}, "modee"),
        ({"ipvs": {"schedular": "rr"}}, "ipvs.schedular"),
        ({"conntrack": {"tcpTimeout": "1s"}}, "conntrack.tcpTimeout"),
        ({"logging": {"options": {"json": {"bogus": 1}}}}, "logging.options.json.bogus"),
        ({"logging": {"vmodule": [{"filePattern": "a"}, {"nope": 1}]}}, "logging.vmodule[1].nope"),
    ],
)
def test_unknown_fields_refused_with_their_path(data, field):
    with pytest.raises(ConfigError) as err:
        config_from_dict({**HEAD, **data})
    assert err.value.path == field
    assert f"unknown field {field.rsplit('.', 1)[-1].split('[')[0]!r}" in str(err.value)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"mode": "userspace"}, "mode"),
        ({"mode": "kernelspace"}, "mode"),  # an upstream mode kpyops does not run
        ({"ipvs": {"scheduler": "fastest"}}, "ipvs.scheduler"),
        ({"iptables": {"syncPeriod": "soon"}}, "iptables.syncPeriod"),
        ({"iptables": {"masqueradeBit": 40}}, "iptables.masqueradeBit"),
        ({"clusterCIDR": "10.0.0.0/33"}, "clusterCIDR"),
        ({"apiVersion": "v1"}, "apiVersion"),
    ],
)
def test_invalid_values_refused(data, field):
    with pytest.raises(ConfigError) as err:
        config_from_dict({**HEAD, **data})
    assert err.value.path == field


def test_durations():
    assert parse_duration("1h2m3s", "x") == 3723
    assert parse_duration("250ms", "x") == 0.25
    assert parse_duration("0", "x") == 0
    with pytest.raises(ConfigError):
        parse_duration("5", "x")
    with pytest.raises(ConfigError):
        parse_duration("1s5", "x")


def test_cli_names_the_file_and_field(tmp_path):
    from click.testing import CliRunner

    from kpyops.cli.proxy import command

    bad = tmp_path / "kp.yaml"
    bad.write_text(
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
        "iptables: {minSyncPeriod: 1s, syncPerod: 30s}\n"
    )
    result = CliRunner().invoke(command, ["--config", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}: iptables.syncPerod: unknown field 'syncPerod'" in result.output
