"""The proxy in nftables mode, in network namespaces, checked with real connections.

One proxy process runs in node 1 for the whole module (``mode: nftables``), reading Services
and EndpointSlices from a folder the tests rewrite; node 2 is another node (NodePort clients,
a remote endpoint). Tests run in file order; the last one stops the proxy and checks that
``--cleanup`` leaves node 1's nftables ruleset (someone else's table included) and iptables
rules exactly as they were before it started.
"""

from __future__ import annotations

import json
import os
import subprocess

import proxy_netns as net
import pytest
import service_checks as checks
from proxy_netns import (
    CLIENT,
    KPYOPS,
    NODE1,
    NODE1_IP,
    NODE2,
    P1,
    P3,
    backends,
    connect,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

SYNC_PERIOD = 2.0
TABLE = "kpyops-proxy"

# A table of someone else's (a node firewall) that must survive, untouched.
PRE_EXISTING = """table inet host-firewall {
    chain input {
        type filter hook input priority 0; policy accept;
        tcp dport 22 accept
    }
}
"""


def nft(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return net.in_ns(NODE1, "nft", *args, check=check)


def our_chains() -> set[str]:
    """The names of the chains in node 1's ip kpyops-proxy table."""
    listed = json.loads(nft("-j", "list", "chains", "ip").stdout)["nftables"]
    return {o["chain"]["name"] for o in listed if o.get("chain", {}).get("table") == TABLE}


def map_keys(name: str) -> list[str]:
    """The keys of one verdict map of our table, as text ("10.96.0.10 . tcp . 80")."""
    listed = json.loads(nft("-j", "list", "map", "ip", TABLE, name).stdout)["nftables"]
    out = []
    for o in listed:
        for elem in o.get("map", {}).get("elem", []):
            key = elem[0]
            parts = key["concat"] if isinstance(key, dict) and "concat" in key else [key]
            out.append(" . ".join(str(p) for p in parts))
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    def prepare(c: net.Cluster) -> None:
        subprocess.run(
            ["ip", "netns", "exec", NODE1, "nft", "-f", "-"], input=PRE_EXISTING, text=True,
            check=True,
        )  # fmt: skip
        c.ruleset_before = nft("list", "ruleset").stdout
        c.iptables_before = net.in_ns(NODE1, "iptables-save").stdout

    folder = tmp_path_factory.mktemp("services")
    with net.running_proxy(folder, "nftables", SYNC_PERIOD, prepare) as c:
        yield c


def test_healthz_metrics_and_one_table_of_our_own(cluster):
    assert net.http_get(NODE1, "http://127.0.0.1:10256/healthz")[0] == 200
    assert net.http_get(NODE1, "http://127.0.0.1:10249/proxyMode")[1].strip() == "nftables"
    assert net.metric(NODE1, "kubeproxy_network_programming_duration_seconds_count") >= 1
    tables = nft("list", "tables").stdout.split("\n")
    assert f"table ip {TABLE}" in tables and "table inet host-firewall" in tables
    assert "KUBE-" not in net.in_ns(NODE1, "iptables-save").stdout  # no iptables rule at all
    assert "10.96.0.10 . tcp . 80" in map_keys("service-ips")


def test_cluster_ip_reaches_every_endpoint_and_spreads(cluster):
    checks.cluster_ip_reaches_every_endpoint_and_spreads()



def test_udp_cluster_ip_spreads(cluster):
    checks.udp_cluster_ip_spreads(cluster)



def test_removing_an_endpoint_stops_traffic_and_removes_its_chain(cluster):
    p3_chain = next(c for c in our_chains() if c.startswith("endpoint-") and P3.ip in c
                    and "/web/" in c)  # fmt: skip
    checks.removing_an_endpoint_stops_traffic(cluster)
    # flushed at once, deleted by a sync at least a second later (the periodic one at most)
    net.wait_until(lambda: p3_chain not in our_chains(), timeout=3 * SYNC_PERIOD)



def test_stale_udp_conntrack_entry_flushed(cluster):
    checks.stale_udp_conntrack_entry_flushed(cluster)



def test_client_ip_affinity_sticks_then_spreads_when_off(cluster):
    stuck = checks.client_ip_affinity_sticks(cluster)
    # The affinity sets are nftables sets with a timeout: one holds the client now.
    sets = nft("list", "sets", "table", "ip", TABLE).stdout
    assert "timeout 5m" in sets and CLIENT.ip in sets
    # Still stuck after a full sync (the table is flushed, the sets' members are kept).
    before = cluster.syncs()
    nft("flush", "chain", "ip", TABLE, "nat-output")  # the canary check forces a full sync
    net.wait_until(lambda: cluster.syncs() >= before + 1, timeout=3 * SYNC_PERIOD)
    again = backends(connect(CLIENT.ns, "10.96.0.13", net.TCP_PORT, 5))
    assert again == [stuck] * 5, again
    checks.affinity_off_spreads_again(cluster)
    assert "affinity-" not in nft("list", "sets", "table", "ip", TABLE).stdout



def test_node_port_from_the_other_node(cluster):
    checks.node_port_from_the_other_node(cluster)



def test_local_external_policy_serves_only_local_endpoints_and_keeps_source(cluster):
    checks.local_external_policy_serves_only_local_endpoints_and_keeps_source(cluster)
    # Pods short-circuit: from a pod on node 1, the NodePort reaches every endpoint.
    from_pod = set(backends(connect(CLIENT.ns, NODE1_IP, 30081, 30)))
    assert from_pod == {P1.name, P3.name}, from_pod
    # No local endpoint left: external traffic is dropped (not rejected), pods still served.
    cluster.change_and_wait(lambda: cluster.put("local", *checks.local_service(P3)))
    assert connect(NODE2, NODE1_IP, 30081, 1) == ["TIMEOUT"]
    assert backends(connect(CLIENT.ns, "10.96.0.15", 80, 3)) == [P3.name] * 3



def test_local_internal_policy_serves_only_local_endpoints(cluster):
    checks.local_internal_policy_serves_only_local_endpoints(cluster)



def test_service_without_endpoints_rejects(cluster):
    checks.service_without_endpoints_rejects(cluster)
    # A port no service has, on a ClusterIP: rejected too (cluster-ips).
    assert connect(CLIENT.ns, "10.96.0.10", 81, 1) == ["REFUSED"]



def test_deleted_service_stops_answering_and_others_keep_working(cluster):
    checks.deleted_service_stops_answering(cluster)
    assert not any(k.startswith("10.96.0.11 ") for k in map_keys("service-ips"))
    assert "10.96.0.11" not in nft("list", "set", "ip", TABLE, "cluster-ips").stdout
    checks.others_keep_working()



def broken_then_back_after_one_sync(cluster, before: float) -> None:
    checks.broken_then_back_after_one_sync(cluster, before, SYNC_PERIOD)



def test_a_deleted_table_comes_back_after_one_sync(cluster):
    before = cluster.syncs()
    nft("delete", "table", "ip", TABLE)
    broken_then_back_after_one_sync(cluster, before)
    assert "10.96.0.13 . tcp . 8080" in map_keys("service-ips")  # every service, not one


def test_a_flushed_base_chain_comes_back_after_one_sync(cluster):
    before = cluster.syncs()
    nft("flush", "chain", "ip", TABLE, "nat-prerouting")
    broken_then_back_after_one_sync(cluster, before)


def test_cleanup_leaves_the_ruleset_as_it_was(cluster):
    cleanup = [KPYOPS, "proxy", "--config", str(cluster.config), "--cleanup"]
    cluster.proxy.terminate()
    assert cluster.proxy.wait(10) == 0
    assert f"table ip {TABLE}" in nft("list", "tables").stdout  # stopping keeps the rules
    done = net.in_ns(NODE1, *cleanup)
    assert done.returncode == 0, done.stderr
    assert nft("list", "ruleset").stdout == cluster.ruleset_before
    assert net.in_ns(NODE1, "iptables-save").stdout.count("\n-A") == cluster.iptables_before.count(
        "\n-A"
    )
    again = net.in_ns(NODE1, *cleanup)
    assert again.returncode == 0, again.stderr  # idempotent
    assert nft("list", "ruleset").stdout == cluster.ruleset_before
