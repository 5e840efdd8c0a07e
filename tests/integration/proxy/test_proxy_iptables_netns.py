"""The proxy in iptables mode, in network namespaces, checked with real connections.

One proxy process runs in node 1 for the whole module, reading Services and EndpointSlices
from a folder the tests rewrite. Tests run in file order; the last one stops the proxy and
checks that ``--cleanup`` leaves node 1's tables exactly as they were before it started.
"""

from __future__ import annotations

import os
import subprocess

import proxy_netns as net
import pytest
import service_checks as checks
from proxy_netns import KPYOPS, NODE1

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

SYNC_PERIOD = 2.0

# Rules a node has before the proxy starts (a firewall, kubelet's chain): must survive.
PRE_EXISTING = """*filter
:KUBE-FIREWALL - [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -j KUBE-FIREWALL
-A KUBE-FIREWALL -d 127.0.0.0/8 ! -s 127.0.0.0/8 -j DROP
COMMIT
*nat
-A POSTROUTING -s 10.99.0.0/16 -j MASQUERADE
COMMIT
*mangle
-A PREROUTING -p udp --dport 9999 -j MARK --set-mark 0x1
COMMIT
"""


def tool(backend: str, suffix: str = "") -> str:
    """iptables, iptables-save, ... of one backend ("system": the distribution's default)."""
    base = "iptables" if backend == "system" else f"iptables-{backend}"
    return base + suffix


@pytest.fixture(scope="module", params=["system", "legacy"])
def cluster(request, tmp_path_factory):
    backend = request.param

    def prepare(c: net.Cluster) -> None:
        subprocess.run(
            ["ip", "netns", "exec", NODE1, tool(backend, "-restore"), "--noflush"],
            input=PRE_EXISTING,
            text=True,
            check=True,
        )
        c.backend = backend
        c.iptables_before = net.in_ns(NODE1, tool(backend, "-save")).stdout

    folder = tmp_path_factory.mktemp("services")
    with net.running_proxy(
        folder, "iptables", SYNC_PERIOD, prepare, "--iptables-backend", backend
    ) as c:
        yield c


def test_healthz_and_metrics(cluster):
    status, body = net.http_get(NODE1, "http://127.0.0.1:10256/healthz")
    assert status == 200 and '"lastUpdated": "20' in body
    assert net.http_get(NODE1, "http://127.0.0.1:10256/livez")[0] == 200
    assert net.http_get(NODE1, "http://127.0.0.1:10249/proxyMode")[1].strip() == "iptables"
    # The slice carried a last-change-trigger-time: its programming latency was recorded.
    assert net.metric(NODE1, "kubeproxy_network_programming_duration_seconds_count") >= 1


def test_cluster_ip_reaches_every_endpoint_and_spreads(cluster):
    checks.cluster_ip_reaches_every_endpoint_and_spreads()


def test_udp_cluster_ip_spreads(cluster):
    checks.udp_cluster_ip_spreads(cluster)


def test_removing_an_endpoint_stops_traffic_within_one_sync(cluster):
    checks.removing_an_endpoint_stops_traffic(cluster)


def test_stale_udp_conntrack_entry_flushed(cluster):
    checks.stale_udp_conntrack_entry_flushed(cluster)


def test_client_ip_affinity_sticks_then_spreads_when_off(cluster):
    checks.client_ip_affinity_sticks(cluster)
    checks.affinity_off_spreads_again(cluster)


def test_node_port_from_the_other_node(cluster):
    checks.node_port_from_the_other_node(cluster)


def test_local_external_policy_serves_only_local_endpoints_and_keeps_source(cluster):
    checks.local_external_policy_serves_only_local_endpoints_and_keeps_source(cluster)


def test_local_internal_policy_serves_only_local_endpoints(cluster):
    checks.local_internal_policy_serves_only_local_endpoints(cluster)


def test_service_without_endpoints_rejects(cluster):
    checks.service_without_endpoints_rejects(cluster)  # REFUSED: rejected, not timed out


def test_deleted_service_stops_answering_and_others_keep_working(cluster):
    checks.deleted_service_stops_answering(cluster)
    saved = net.in_ns(NODE1, tool(cluster.backend, "-save"), "-t", "nat").stdout
    assert "10.96.0.11" not in saved
    checks.others_keep_working()


def broken_then_back_after_one_sync(cluster, before: float) -> None:
    checks.broken_then_back_after_one_sync(cluster, before, SYNC_PERIOD)


def test_flushed_rules_come_back_after_one_sync(cluster):
    before = cluster.syncs()
    # A firewall reload: flush the whole nat table, then put back the firewall's own rule.
    net.in_ns(NODE1, tool(cluster.backend), "-t", "nat", "-F")
    net.in_ns(
        NODE1,
        tool(cluster.backend),
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-s",
        "10.99.0.0/16",
        "-j",
        "MASQUERADE",
    )
    broken_then_back_after_one_sync(cluster, before)


def test_a_flushed_services_chain_alone_comes_back_within_one_sync_period(cluster):
    """Only nat KUBE-SERVICES flushed (the canary chains intact): the next periodic sync
    notices and rewrites it, as kube-proxy's every-sync rewrite would."""
    net.in_ns(NODE1, tool(cluster.backend), "-t", "nat", "-F", "KUBE-SERVICES")
    before = cluster.syncs()
    broken_then_back_after_one_sync(cluster, before)


def test_no_duplicate_jump_rules_after_resyncs(cluster):
    saved = net.in_ns(NODE1, tool(cluster.backend, "-save")).stdout
    jumps = [
        line
        for line in saved.splitlines()
        if line.startswith(
            ("-A PREROUTING", "-A OUTPUT", "-A INPUT", "-A FORWARD", "-A POSTROUTING")
        )
        and "KUBE-" in line
    ]
    assert len(jumps) == len(set(jumps)), jumps


def test_cleanup_restores_tables_exactly(cluster):
    save = tool(cluster.backend, "-save")
    cleanup = [KPYOPS, "proxy", "--config", str(cluster.config), "--cleanup"]
    cleanup += ["--iptables-backend", cluster.backend]
    cluster.proxy.terminate()
    assert cluster.proxy.wait(10) == 0
    assert "KUBE-SERVICES" in net.in_ns(NODE1, save).stdout  # stopping keeps the rules
    done = net.in_ns(NODE1, *cleanup)
    assert done.returncode == 0, done.stderr
    assert _rules(net.in_ns(NODE1, save).stdout) == _rules(cluster.iptables_before)
    again = net.in_ns(NODE1, *cleanup)
    assert again.returncode == 0, again.stderr  # idempotent
    assert _rules(net.in_ns(NODE1, save).stdout) == _rules(cluster.iptables_before)
    assert "KUBE-FIREWALL" in cluster.iptables_before  # someone else's chain survived


def _rules(saved: str) -> list[str]:
    """iptables-save without its timestamp comments and counters."""
    return [
        line.split(" [")[0] if line.startswith(":") else line
        for line in saved.splitlines()
        if not line.startswith("#")
    ]
