"""The etcd and pki roles' templates and group_vars, rendered as Ansible would, from a spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from rolerender import Inventory, RoleRenderer

ROOT = Path(__file__).resolve().parents[2]
FLAGS = ROOT.parent / "shared" / "reference" / "component-flags.json"

UPSTREAM = "https://github.com/etcd-io/etcd/releases/download/v{version}/etcd-v{version}-linux-amd64.tar.gz"
SPEC = {
    "metadata": {"name": "prod"},
    "spec": {
        "cloud": "local",
        "controlPlane": {"count": 3,
                         "apiLoadBalancer": {"type": "external", "address": "api.prod.example"}},
        "networking": {"serviceCIDR": "10.32.0.0/16", "clusterDomain": "corp.internal"},
        "etcd": {"version": "3.5.16", "tuning": {"heartbeatIntervalMs": 100, "electionTimeoutMs": 1000,
                            "snapshotCount": 5000, "quotaBackendBytes": 4294967296},
                 "backup": {"schedule": "hourly", "retain": 12, "encrypt": True}},
        "artifacts": {"items": {"etcd": {"version": "3.5.16", "url": UPSTREAM}}},
    },
}


# Set by the role at run time (first start of a member).
STARTED = {"etcd_initial_cluster_state": "new"}


@pytest.fixture(scope="module")
def inv():
    return Inventory(SPEC, state_dir="/srv/kpyops/prod")


def env_of(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def test_etcd_env_sets_only_flags_etcd_accepts(inv):
    env = env_of(RoleRenderer("etcd", inv, inv.host("etcd"), STARTED).render("etcd.env.j2"))
    flags = set(json.loads(FLAGS.read_text())["components"]["etcd"]["flags"])
    names = {k.removeprefix("ETCD_").lower().replace("_", "-") for k in env}
    assert names <= flags, names - flags


def test_etcd_env_has_tls_everywhere_and_the_spec_tuning(inv):
    host = inv.host("etcd", 1)
    env = env_of(RoleRenderer("etcd", inv, host, STARTED).render("etcd.env.j2"))
    addr = inv.host_vars[host]["kpyops_address"]
    assert env["ETCD_CLIENT_CERT_AUTH"] == "true" and env["ETCD_PEER_CLIENT_CERT_AUTH"] == "true"
    for key in ("ETCD_LISTEN_CLIENT_URLS", "ETCD_ADVERTISE_CLIENT_URLS", "ETCD_LISTEN_PEER_URLS",
                "ETCD_INITIAL_ADVERTISE_PEER_URLS", "ETCD_INITIAL_CLUSTER"):
        assert "http://" not in env[key], key
    assert env["ETCD_ADVERTISE_CLIENT_URLS"] == f"https://{addr}:2379"
    assert env["ETCD_LISTEN_METRICS_URLS"] == "http://127.0.0.1:2381"  # plain HTTP on loopback only
    assert "ETCD_AUTO_TLS" not in env and "ETCD_PEER_AUTO_TLS" not in env  # CIS 2.3 / 2.6
    # etcd 3.5 (this spec's) still has a v2 API to turn off; 3.6 has none (test below)
    assert env["ETCD_ENABLE_V2"] == "false"
    members = inv.groups["etcd"]
    assert env["ETCD_INITIAL_CLUSTER"] == ",".join(
        f"{h}=https://{inv.host_vars[h]['kpyops_address']}:2380" for h in members
    )
    assert (env["ETCD_HEARTBEAT_INTERVAL"], env["ETCD_ELECTION_TIMEOUT"]) == ("100", "1000")
    assert (env["ETCD_SNAPSHOT_COUNT"], env["ETCD_QUOTA_BACKEND_BYTES"]) == ("5000", "4294967296")
    assert env["ETCD_TRUSTED_CA_FILE"] == env["ETCD_PEER_TRUSTED_CA_FILE"] == "/etc/etcd/pki/ca.crt"


def test_etcd_36_gets_no_flag_it_warns_about():
    """etcd 3.6 warns about ETCD_ENABLE_V2 (removed) and --max-snapshots (deprecated)."""
    data = json.loads(json.dumps(SPEC))
    data["spec"]["etcd"]["version"] = "3.6.16"
    data["spec"]["artifacts"]["items"]["etcd"]["version"] = "3.6.16"
    inv36 = Inventory(data)
    env = env_of(RoleRenderer("etcd", inv36, inv36.host("etcd"), STARTED).render("etcd.env.j2"))
    assert "ETCD_ENABLE_V2" not in env and "ETCD_MAX_SNAPSHOTS" not in env
    assert env["ETCD_CLIENT_CERT_AUTH"] == "true"


def test_group_vars_carry_the_spec(inv):
    gv = inv.group_vars
    assert gv["pki_dir"] == "/srv/kpyops/prod/pki"
    assert gv["pki_service_cidrs"] == ["10.32.0.0/16"]
    assert gv["pki_cluster_domain"] == "corp.internal"
    assert gv["pki_apiserver_extra_sans"] == ["api.prod.example"]
    assert gv["etcd_backup_schedule"] == "hourly" and gv["etcd_backup_retain"] == 12
    assert gv["etcd_backup_encrypt"] is True
    assert gv["etcd_backup_local_dir"] == "/srv/kpyops/prod/backups/etcd"
    art = gv["etcd_artifact"]
    assert art["url"].endswith(f"/v{art['version']}/etcd-v{art['version']}-linux-amd64.tar.gz")
    assert "{version}" not in art["url"]
    assert art["checksum_url"].endswith("/SHA256SUMS") and art["sha256"] is None


def test_offline_files_repository_and_pinned_sha256():
    spec = json.loads(json.dumps(SPEC))
    spec["spec"]["artifacts"] = {"filesRepository": "http://files.lan/k8s",
                                 "items": {"etcd": {"version": "3.5.16", "sha256": "ab" * 32}}}
    gv = Inventory(spec).group_vars
    art = gv["etcd_artifact"]
    assert gv["etcd_files_repository"] == "http://files.lan/k8s"
    assert art == {"name": "etcd", "version": "3.5.16", "file": "etcd-v3.5.16-linux-amd64.tar.gz",
                   "url": None, "sha256": "ab" * 32, "checksum_url": None}


def test_certificate_plan_covers_every_certificate_the_cluster_needs(inv):
    r = RoleRenderer("pki", inv, inv.host("etcd"))
    plan = {c["name"]: c for c in yaml.safe_load(r.render("certificates.yml.j2"))}
    etcd, cps, nodes = inv.groups["etcd"], inv.groups["kube_control_plane"], inv.groups["k8s_cluster"]
    expected = {f"etcd/server-{h}" for h in etcd} | {f"etcd/peer-{h}" for h in etcd}
    expected |= {"etcd/healthcheck-client", "apiserver-etcd-client", "apiserver",
                 "apiserver-kubelet-client", "front-proxy-client", "controller-manager",
                 "scheduler", "admin", "kube-proxy"}
    expected |= {f"kubelet/{h}" for h in nodes}
    assert set(plan) == expected
    h = etcd[0]
    server = plan[f"etcd/server-{h}"]
    assert server["ca"] == "etcd/ca" and set(server["usages"]) == {"server", "client"}
    assert set(server["dns"]) == {h, "localhost"}
    assert set(server["ips"]) == {str(inv.host_vars[h]["kpyops_address"]), "127.0.0.1"}
    api = plan["apiserver"]
    assert {"kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc.corp.internal", *cps} <= set(api["dns"])
    assert {str(inv.host_vars[c]["kpyops_address"]) for c in cps} <= set(api["ips"])
    assert api["sans"] == ["api.prod.example"] and api["service_cidrs"] == ["10.32.0.0/16"]
    assert plan["apiserver-etcd-client"]["ca"] == "etcd/ca"
    assert plan["front-proxy-client"]["ca"] == "front-proxy-ca"
    assert plan[f"kubelet/{nodes[-1]}"]["cn"] == f"system:node:{nodes[-1]}"
    assert plan[f"kubelet/{nodes[-1]}"]["orgs"] == ["system:nodes"]
    assert plan["admin"]["orgs"] == ["system:masters"]
    assert plan["kube-proxy"]["cn"] == "system:kube-proxy" and plan["kube-proxy"]["usages"] == ["client"]


def test_backup_timer_uses_the_spec_schedule(inv):
    r = RoleRenderer("etcd_backup", inv, inv.host("etcd"))
    assert "OnCalendar=hourly" in r.render("etcd-backup.timer.j2")
    script = r.render("etcd-backup.sh.j2", etcd_conf_dir="/etc/etcd", etcd_bin_dir="/usr/local/bin")
    assert "encrypt=yes" in script and "retain=12" in script
