"""Health-check node ports: which services get one, what they answer, and the sync loop
opening and closing their servers."""

import json
import socket
import urllib.error
import urllib.request

from proxy_dataplane import FakeDataplane

from kpyops.proxy import manifests as m
from kpyops.proxy.objects import service_ports
from kpyops.proxy.proxier import Proxier
from kpyops.proxy.service_health import ServiceHealthServers

PORTS = [{"name": "http", "port": 80, "nodePort": 30080}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def lb(name: str, port: int, policy: str = "Local", kind: str = "LoadBalancer") -> dict:
    return m.service(
        name,
        "10.96.0.7",
        PORTS,
        type=kind,
        externalTrafficPolicy=policy,
        healthCheckNodePort=port,
    )


def test_only_local_load_balancers_have_a_health_check_port():
    (local,) = service_ports(lb("a", 31000)).values()
    (cluster,) = service_ports(lb("a", 31000, policy="Cluster")).values()
    (nodeport,) = service_ports(lb("a", 31000, kind="NodePort")).values()
    assert (local.health_check_node_port, cluster.health_check_node_port) == (31000, 0)
    assert nodeport.health_check_node_port == 0


def test_health_servers_answer_with_local_endpoint_count_and_proxy_health():
    port = free_port()
    healthy = [True]
    servers = ServiceHealthServers(["127.0.0.1"], lambda: healthy[0])
    try:
        servers.sync({("ns", "web"): port}, {("ns", "web"): 2})
        assert get(port) == (
            200,
            {
                "service": {"namespace": "ns", "name": "web"},
                "localEndpoints": 2,
                "serviceProxyHealthy": True,
            },
        )
        healthy[0] = False
        code, body = get(port)
        assert code == 503 and body["serviceProxyHealthy"] is False
        healthy[0] = True
        servers.sync({("ns", "web"): port}, {("ns", "web"): 0})
        code, body = get(port)
        assert code == 503 and body["localEndpoints"] == 0
        servers.sync({}, {})
        assert servers.ports() == {} and refused(port)
    finally:
        servers.close_all()


def test_port_in_use_is_retried_at_next_sync():
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    servers = ServiceHealthServers(["127.0.0.1"])
    try:
        servers.sync({("ns", "web"): port}, {("ns", "web"): 1})
        assert servers.ports() == {}
        blocker.close()
        servers.sync({("ns", "web"): port}, {("ns", "web"): 1})
        assert servers.ports() == {("ns", "web"): port} and get(port)[0] == 200
    finally:
        blocker.close()
        servers.close_all()


def test_sync_loop_opens_counts_and_closes_servers():
    port = free_port()
    servers = ServiceHealthServers(["127.0.0.1"])
    p = Proxier(FakeDataplane(), hostname="node1", min_sync_period=0, service_health=servers)
    svc = lb("web", port)
    eps = [
        m.endpoint("10.0.0.1", node="node1"),
        m.endpoint("10.0.0.2", node="node1", ready=False),
        m.endpoint("10.0.0.3", node="node2"),
    ]
    ports = [{"name": "http", "port": 8080}]
    try:
        p.on_service_update(svc)
        p.on_slice_update(m.endpoint_slice("web", eps, ports))
        p.on_services_synced()
        p.on_slices_synced()
        p.sync_proxy_rules()
        code, body = get(port)
        assert code == 200 and body["localEndpoints"] == 1  # ready and on node1 only
        p.on_slice_update(m.endpoint_slice("web", eps[2:], ports))
        p.sync_proxy_rules()
        assert get(port)[0] == 503
        p.on_service_delete(svc)
        p.sync_proxy_rules()
        assert servers.ports() == {} and refused(port)
    finally:
        servers.close_all()
