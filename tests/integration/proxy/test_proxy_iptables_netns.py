"""The proxy in iptables mode, in network namespaces, checked with real connections.

One proxy process runs in node 1 for the whole module, reading Services and EndpointSlices
from a folder the tests rewrite. Tests run in file order; the last one stops the proxy and
checks that ``--cleanup`` leaves node 1's tables exactly as they were before it started.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter

import proxy_netns as net
import pytest
from proxy_netns import (
    CLIENT,
    KPYOPS,
    NODE1,
    NODE1_IP,
    NODE2,
    NODE2_IP,
    P1,
    P2,
    P3,
    PORTS,
    UDP_PORTS,
    Cluster,
    backends,
    connect,
    eps,
    now_rfc3339,
    service,
)

from kpyops.proxy import manifests as m

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
    folder = tmp_path_factory.mktemp("services")
    config = net.proxy_config(folder.parent / "kube-proxy.yaml", "iptables", SYNC_PERIOD)
    net.create()
    servers = []
    c = Cluster(folder)
    try:
        servers = net.start_servers()
        subprocess.run(
            ["ip", "netns", "exec", NODE1, tool(backend, "-restore"), "--noflush"],
            input=PRE_EXISTING,
            text=True,
            check=True,
        )
        before = net.in_ns(NODE1, tool(backend, "-save")).stdout
        c.backend = backend
        c.iptables_before = before
        c.put(
            "web",
            service("web", "10.96.0.10", [{"name": "http", "port": 80, "targetPort": 8080}]),
            m.endpoint_slice("web", eps(P1, P2, P3), PORTS, trigger_time=now_rfc3339()),
        )
        c.start_proxy(config, "--iptables-backend", backend)
        yield c
    finally:
        c.stop_proxy()
        for s in servers:
            s.kill()
            s.wait()
        net.destroy()


def test_healthz_and_metrics(cluster):
    status, body = net.http_get(NODE1, "http://127.0.0.1:10256/healthz")
    assert status == 200 and '"lastUpdated": "20' in body
    assert net.http_get(NODE1, "http://127.0.0.1:10256/livez")[0] == 200
    assert net.http_get(NODE1, "http://127.0.0.1:10249/proxyMode")[1].strip() == "iptables"
    # The slice carried a last-change-trigger-time: its programming latency was recorded.
    assert net.metric(NODE1, "kubeproxy_network_programming_duration_seconds_count") >= 1


def test_cluster_ip_reaches_every_endpoint_and_spreads(cluster):
    from_pod = Counter(backends(connect(CLIENT.ns, "10.96.0.10", 80, 90)))
    assert set(from_pod) == {P1.name, P2.name, P3.name}, from_pod  # PREROUTING path
    assert min(from_pod.values()) >= 10, from_pod  # ~30 each; 10 is >4 sigma below
    from_node = Counter(backends(connect(NODE1, "10.96.0.10", 80, 45)))  # OUTPUT path
    assert set(from_node) == {P1.name, P2.name, P3.name}, from_node


def test_udp_cluster_ip_spreads(cluster):
    cluster.change_and_wait(
        lambda: cluster.put(
            "dns",
            service("dns", "10.96.0.11", [{"name": "dns", "port": 53, "protocol": "UDP"}]),
            m.endpoint_slice("dns", eps(P1, P2, P3), UDP_PORTS),
        )
    )
    seen = Counter(backends(connect(CLIENT.ns, "10.96.0.11", 53, 45, proto="udp")))
    assert set(seen) == {P1.name, P2.name, P3.name}, seen


def test_removing_an_endpoint_stops_traffic_within_one_sync(cluster):
    cluster.change_and_wait(
        lambda: cluster.put(
            "web",
            service("web", "10.96.0.10", [{"name": "http", "port": 80}]),
            m.endpoint_slice("web", eps(P1, P2), PORTS),
        )
    )
    seen = Counter(backends(connect(CLIENT.ns, "10.96.0.10", 80, 40)))
    assert set(seen) == {P1.name, P2.name}, seen


def test_stale_udp_conntrack_entry_flushed(cluster):
    cluster.change_and_wait(
        lambda: cluster.put(
            "udp1",
            service("udp1", "10.96.0.12", [{"name": "dns", "port": 53, "protocol": "UDP"}]),
            m.endpoint_slice("udp1", eps(P1), UDP_PORTS),
        )
    )
    first = backends(connect(CLIENT.ns, "10.96.0.12", 53, 3, proto="udp", source_port=40123))
    assert first == [P1.name] * 3
    cluster.change_and_wait(
        lambda: cluster.put(
            "udp1",
            service("udp1", "10.96.0.12", [{"name": "dns", "port": 53, "protocol": "UDP"}]),
            m.endpoint_slice("udp1", eps(P2), UDP_PORTS),
        )
    )
    # Same 5-tuple: without the flush, conntrack would keep sending it to P1 (still running).
    after = backends(connect(CLIENT.ns, "10.96.0.12", 53, 3, proto="udp", source_port=40123))
    assert after == [P2.name] * 3


def test_client_ip_affinity_sticks_then_spreads_when_off(cluster):
    sticky = {
        "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 300}},
    }
    slice_ = m.endpoint_slice("sticky", eps(P1, P2, P3), PORTS)
    cluster.change_and_wait(
        lambda: cluster.put("sticky", service("sticky", "10.96.0.13", **sticky), slice_)
    )
    answers = backends(connect(CLIENT.ns, "10.96.0.13", net.TCP_PORT, 15))
    assert len(answers) == 15 and len(set(answers)) == 1, answers
    cluster.change_and_wait(lambda: cluster.put("sticky", service("sticky", "10.96.0.13"), slice_))
    spread = Counter(backends(connect(CLIENT.ns, "10.96.0.13", net.TCP_PORT, 45)))
    assert len(spread) == 3, spread


def test_node_port_from_the_other_node(cluster):
    ports = [{"name": "http", "port": 80, "nodePort": 30080}]
    cluster.change_and_wait(
        lambda: cluster.put(
            "np",
            service("np", "10.96.0.14", ports, type="NodePort"),
            m.endpoint_slice("np", eps(P1, P2, P3), PORTS),
        )
    )
    answers = connect(NODE2, NODE1_IP, 30080, 45)
    assert set(backends(answers)) == {P1.name, P2.name, P3.name}, answers
    # Cluster policy: the source is masqueraded to node 1, so node 2's pod can answer back.
    assert {a.split()[1] for a in answers} <= {NODE1_IP, "10.244.1.1"}, answers


def test_local_external_policy_serves_only_local_endpoints_and_keeps_source(cluster):
    ports = [{"name": "http", "port": 80, "nodePort": 30081}]
    cluster.change_and_wait(
        lambda: cluster.put(
            "local",
            service("local", "10.96.0.15", ports, type="NodePort", externalTrafficPolicy="Local"),
            m.endpoint_slice("local", eps(P1, P3), PORTS),
        )
    )
    answers = connect(NODE2, NODE1_IP, 30081, 20)
    assert backends(answers) == [P1.name] * 20, answers
    assert {a.split()[1] for a in answers} == {NODE2_IP}  # client address preserved


def test_local_internal_policy_serves_only_local_endpoints(cluster):
    cluster.change_and_wait(
        lambda: cluster.put(
            "ilocal",
            service("ilocal", "10.96.0.16", internalTrafficPolicy="Local"),
            m.endpoint_slice("ilocal", eps(P2, P3), PORTS),
        )
    )
    assert backends(connect(CLIENT.ns, "10.96.0.16", net.TCP_PORT, 20)) == [P2.name] * 20


def test_service_without_endpoints_rejects(cluster):
    cluster.change_and_wait(lambda: cluster.put("empty", service("empty", "10.96.0.17")))
    start = time.monotonic()
    assert connect(CLIENT.ns, "10.96.0.17", net.TCP_PORT, 3) == ["REFUSED"] * 3
    assert connect(NODE1, "10.96.0.17", net.TCP_PORT, 3) == ["REFUSED"] * 3
    assert time.monotonic() - start < 5  # rejected at once, not timed out
    # Only not-ready endpoints: still nothing to send to, still rejected.
    cluster.change_and_wait(
        lambda: cluster.put(
            "empty",
            service("empty", "10.96.0.17"),
            m.endpoint_slice("empty", eps(P1, ready=False), PORTS),
        )
    )
    assert connect(CLIENT.ns, "10.96.0.17", net.TCP_PORT, 2) == ["REFUSED"] * 2


def test_deleted_service_stops_answering_and_others_keep_working(cluster):
    assert set(backends(connect(CLIENT.ns, "10.96.0.11", 53, 6, proto="udp"))) <= {
        P1.name,
        P2.name,
        P3.name,
    }
    cluster.change_and_wait(lambda: cluster.remove("dns"))
    gone = connect(CLIENT.ns, "10.96.0.11", 53, 2, proto="udp")
    assert not set(backends(gone)) & {P1.name, P2.name, P3.name}, gone
    saved = net.in_ns(NODE1, tool(cluster.backend, "-save"), "-t", "nat").stdout
    assert "10.96.0.11" not in saved
    assert set(backends(connect(CLIENT.ns, "10.96.0.10", 80, 20))) == {P1.name, P2.name}


def broken_then_back_after_one_sync(cluster, before: float) -> None:
    """The service fails while no sync has run since the flush, and works after one."""
    broken = connect(CLIENT.ns, "10.96.0.10", 80, 1)
    if cluster.syncs() == before:  # no sync yet: the flush really broke the service
        assert broken[0].split()[0] not in (P1.name, P2.name), broken
    net.wait_until(lambda: cluster.syncs() >= before + 1, timeout=3 * SYNC_PERIOD)
    seen = set(backends(connect(CLIENT.ns, "10.96.0.10", 80, 20)))
    assert seen == {P1.name, P2.name}


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
