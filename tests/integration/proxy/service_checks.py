"""Service behaviour every proxy mode must show, checked with real connections through the
proxy in node 1 of proxy_netns; each test module of a mode calls these in its own order and
adds what only its kernel state can show.

The scenarios build on each other as the modules run them, in file order: "web"
(10.96.0.10, P1-P3) exists from the start; ``udp_cluster_ip_spreads`` adds "dns".
"""

from __future__ import annotations

from collections import Counter

import proxy_netns as net
from proxy_netns import (
    CLIENT,
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
    service,
)

from kpyops.proxy import manifests as m

DNS = [{"name": "dns", "port": 53, "protocol": "UDP"}]
STICKY = {
    "sessionAffinity": "ClientIP",
    "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 300}},
}


def cluster_ip_reaches_every_endpoint_and_spreads() -> None:
    from_pod = Counter(backends(connect(CLIENT.ns, "10.96.0.10", 80, 90)))  # prerouting
    assert set(from_pod) == {P1.name, P2.name, P3.name}, from_pod
    assert min(from_pod.values()) >= 10, from_pod  # ~30 each; 10 is >4 sigma below
    from_node = Counter(backends(connect(NODE1, "10.96.0.10", 80, 45)))  # output
    assert set(from_node) == {P1.name, P2.name, P3.name}, from_node


def udp_cluster_ip_spreads(cluster: Cluster) -> None:
    cluster.change_and_wait(
        lambda: cluster.put(
            "dns", service("dns", "10.96.0.11", DNS), m.endpoint_slice("dns", eps(P1, P2, P3), UDP_PORTS)
        )
    )
    seen = Counter(backends(connect(CLIENT.ns, "10.96.0.11", 53, 45, proto="udp")))
    assert set(seen) == {P1.name, P2.name, P3.name}, seen


def removing_an_endpoint_stops_traffic(cluster: Cluster) -> None:
    cluster.change_and_wait(
        lambda: cluster.put(
            "web",
            service("web", "10.96.0.10", [{"name": "http", "port": 80}]),
            m.endpoint_slice("web", eps(P1, P2), PORTS),
        )
    )
    seen = Counter(backends(connect(CLIENT.ns, "10.96.0.10", 80, 40)))
    assert set(seen) == {P1.name, P2.name}, seen


def stale_udp_conntrack_entry_flushed(cluster: Cluster) -> None:
    def put(pod):
        return lambda: cluster.put(
            "udp1", service("udp1", "10.96.0.12", DNS), m.endpoint_slice("udp1", eps(pod), UDP_PORTS)
        )

    cluster.change_and_wait(put(P1))
    first = backends(connect(CLIENT.ns, "10.96.0.12", 53, 3, proto="udp", source_port=40123))
    assert first == [P1.name] * 3
    cluster.change_and_wait(put(P2))
    # Same 5-tuple: without the flush, conntrack would keep sending it to P1 (still running).
    after = backends(connect(CLIENT.ns, "10.96.0.12", 53, 3, proto="udp", source_port=40123))
    assert after == [P2.name] * 3


def client_ip_affinity_sticks(cluster: Cluster) -> str:
    """A sticky service "sticky" (10.96.0.13): 15 connections, one backend (returned)."""
    slice_ = m.endpoint_slice("sticky", eps(P1, P2, P3), PORTS)
    cluster.change_and_wait(
        lambda: cluster.put("sticky", service("sticky", "10.96.0.13", **STICKY), slice_)
    )
    answers = backends(connect(CLIENT.ns, "10.96.0.13", net.TCP_PORT, 15))
    assert len(answers) == 15 and len(set(answers)) == 1, answers
    return answers[0]


def affinity_off_spreads_again(cluster: Cluster) -> None:
    slice_ = m.endpoint_slice("sticky", eps(P1, P2, P3), PORTS)
    cluster.change_and_wait(lambda: cluster.put("sticky", service("sticky", "10.96.0.13"), slice_))
    spread = Counter(backends(connect(CLIENT.ns, "10.96.0.13", net.TCP_PORT, 45)))
    assert len(spread) == 3, spread


def node_port_from_the_other_node(cluster: Cluster) -> None:
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


LOCAL_PORTS = [{"name": "http", "port": 80, "nodePort": 30081}]


def local_service(*pods):
    """"local" (10.96.0.15, NodePort 30081, externalTrafficPolicy Local) on ``pods``."""
    return (
        service("local", "10.96.0.15", LOCAL_PORTS, type="NodePort", externalTrafficPolicy="Local"),
        m.endpoint_slice("local", eps(*pods), PORTS),
    )


def local_external_policy_serves_only_local_endpoints_and_keeps_source(cluster: Cluster) -> None:
    cluster.change_and_wait(lambda: cluster.put("local", *local_service(P1, P3)))
    answers = connect(NODE2, NODE1_IP, 30081, 20)
    assert backends(answers) == [P1.name] * 20, answers
    assert {a.split()[1] for a in answers} == {NODE2_IP}  # client address preserved


def local_internal_policy_serves_only_local_endpoints(cluster: Cluster) -> None:
    cluster.change_and_wait(
        lambda: cluster.put(
            "ilocal",
            service("ilocal", "10.96.0.16", internalTrafficPolicy="Local"),
            m.endpoint_slice("ilocal", eps(P2, P3), PORTS),
        )
    )
    assert backends(connect(CLIENT.ns, "10.96.0.16", net.TCP_PORT, 20)) == [P2.name] * 20


def service_without_endpoints_rejects(cluster: Cluster) -> None:
    cluster.change_and_wait(lambda: cluster.put("empty", service("empty", "10.96.0.17")))
    assert connect(CLIENT.ns, "10.96.0.17", net.TCP_PORT, 3) == ["REFUSED"] * 3
    assert connect(NODE1, "10.96.0.17", net.TCP_PORT, 3) == ["REFUSED"] * 3
    # Only not-ready endpoints: still nothing to send to, still rejected.
    cluster.change_and_wait(
        lambda: cluster.put(
            "empty",
            service("empty", "10.96.0.17"),
            m.endpoint_slice("empty", eps(P1, ready=False), PORTS),
        )
    )
    assert connect(CLIENT.ns, "10.96.0.17", net.TCP_PORT, 2) == ["REFUSED"] * 2


def deleted_service_stops_answering(cluster: Cluster) -> None:
    """"dns" deleted: it no longer answers (the caller checks the kernel state)."""
    assert set(backends(connect(CLIENT.ns, "10.96.0.11", 53, 6, proto="udp"))) <= {
        P1.name, P2.name, P3.name
    }  # fmt: skip
    cluster.change_and_wait(lambda: cluster.remove("dns"))
    gone = connect(CLIENT.ns, "10.96.0.11", 53, 2, proto="udp")
    assert not set(backends(gone)) & {P1.name, P2.name, P3.name}, gone


def others_keep_working() -> None:
    assert set(backends(connect(CLIENT.ns, "10.96.0.10", 80, 20))) == {P1.name, P2.name}


def broken_then_back_after_one_sync(cluster: Cluster, before: float, sync_period: float) -> None:
    """The service fails while no sync has run since the damage, and works after one."""
    broken = connect(CLIENT.ns, "10.96.0.10", 80, 1)
    if cluster.syncs() == before:  # no sync yet: the damage really broke the service
        assert broken[0].split()[0] not in (P1.name, P2.name), broken
    net.wait_until(lambda: cluster.syncs() >= before + 1, timeout=3 * sync_period)
    others_keep_working()
