"""Node-level service semantics in network namespaces: health-check node ports, the
``primary`` nodePortAddresses keyword, zone and node hints, and route_localnet put back by --cleanup.

    h2-p1 (pod 10.246.1.11, node1, zone-a)       h2-p3 (pod 10.246.2.13, node2, zone-b)
                  |                                           |
    h2-n1 (node1: 192.168.79.1 primary, 192.168.80.1) ===== h2-n2 (node2: 192.168.79.2)

The proxy runs in h2-n1 from a services folder, with ``--node-ip 192.168.79.1 --node-zone
zone-a`` and ``nodePortAddresses: [primary, localhost]``. Node 1 has a firewall that drops the
NodePort range in filter INPUT, as a hardened node would: only the proxy's accept rule for
health-check ports lets those through. Tests run in file order; the last stops the proxy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import proxy_netns as net
import pytest
import yaml
from proxy_netns import backends, connect, in_ns, sh

from kpyops.proxy import manifests as m

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

KPYOPS = str(Path(sys.executable).parent / "kpyops")
N1, N2 = "h2-n1", "h2-n2"
N1_IP, N1_OTHER_IP, N2_IP = "192.168.79.1", "192.168.80.1", "192.168.79.2"
PODS = {"h2-p1": (N1, "10.246.1.11", "10.246.1.1"), "h2-p3": (N2, "10.246.2.13", "10.246.2.1")}
NODE_NAME = {N1: "node1", N2: "node2"}
ZONE = {"h2-p1": "zone-a", "h2-p3": "zone-b"}
ALL_NS = (N1, N2, *PODS)
PORTS = [{"name": "http", "port": net.TCP_PORT, "protocol": "TCP"}]
HC_PORT, NODE_PORT = 31555, 30090

FIREWALL = """*filter
-A INPUT -p tcp -m tcp --dport 30000:32767 -j DROP
COMMIT
"""


def create() -> None:
    destroy()
    for ns in ALL_NS:
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    for node in (N1, N2):
        in_ns(node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        in_ns(node, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0")
    sh("ip", "-n", N1, "link", "add", "h2n-12", "type", "veth", "peer", "name", "h2n-21")
    sh("ip", "-n", N1, "link", "set", "h2n-21", "netns", N2)
    for node, dev, ip in ((N1, "h2n-12", N1_IP), (N2, "h2n-21", N2_IP)):
        sh("ip", "-n", node, "addr", "add", f"{ip}/24", "dev", dev)
        sh("ip", "-n", node, "link", "set", dev, "up")
    sh("ip", "-n", N1, "addr", "add", f"{N1_OTHER_IP}/24", "dev", "h2n-12")
    sh("ip", "-n", N2, "route", "add", "192.168.80.0/24", "via", N1_IP)
    sh("ip", "-n", N1, "route", "add", "10.246.2.0/24", "via", N2_IP)
    sh("ip", "-n", N2, "route", "add", "10.246.1.0/24", "via", N1_IP)
    sh("ip", "-n", N1, "route", "add", "default", "via", N2_IP)
    for pod, (node, ip, gw) in PODS.items():
        dev = "h2v-" + pod[-2:]
        sh("ip", "-n", node, "link", "add", dev, "type", "veth", "peer", "name", "eth0")
        sh("ip", "-n", node, "link", "set", "eth0", "netns", pod)
        sh("ip", "-n", node, "addr", "add", f"{gw}/32", "dev", dev)
        sh("ip", "-n", node, "link", "set", dev, "up")
        sh("ip", "-n", node, "route", "add", f"{ip}/32", "dev", dev)
        sh("ip", "-n", pod, "addr", "add", f"{ip}/32", "dev", "eth0")
        sh("ip", "-n", pod, "link", "set", "eth0", "up")
        sh("ip", "-n", pod, "route", "add", f"{gw}/32", "dev", "eth0")
        sh("ip", "-n", pod, "route", "add", "default", "via", gw)


def destroy() -> None:
    for ns in ALL_NS:
        sh("ip", "netns", "del", ns, check=False)


def start_servers() -> list[subprocess.Popen]:
    procs = []
    for pod in PODS:
        cmd = ["ip", "netns", "exec", pod, sys.executable, "-c", net.SERVER, pod]
        proc = subprocess.Popen(
            [*cmd, str(net.TCP_PORT), str(net.UDP_PORT)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().strip() == "ready"
        procs.append(proc)
    return procs


def endpoint(pod: str, hints: bool = False, for_node: str = "") -> dict:
    node, ip, _ = PODS[pod]
    ep = m.endpoint(ip, node=NODE_NAME[node])
    if hints:
        ep["hints"] = {"forZones": [{"name": ZONE[pod]}]}
    if for_node:
        ep.setdefault("hints", {})["forNodes"] = [{"name": for_node}]
    return ep


class Node(net.ServicesFolder):
    def __init__(self, folder: Path, config: Path, state: Path) -> None:
        super().__init__(folder)
        self.config, self.state = config, state
        self.proxy: subprocess.Popen | None = None

    def synced_after(self, change) -> None:
        """Make a change, then wait until a sync has run after it."""
        before = self.syncs()
        change()
        net.wait_until(lambda: self.syncs() > before, timeout=10)

    def syncs(self) -> float:
        try:
            name = "kubeproxy_sync_proxy_rules_duration_seconds_count"
            return net.metric(N1, name, port=10259) or 0
        except (subprocess.CalledProcessError, ValueError):
            return 0


def route_localnet() -> str:
    return in_ns(N1, "sysctl", "-n", "net.ipv4.conf.all.route_localnet").stdout.strip()


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    folder = tmp_path_factory.mktemp("h2-services")
    config = folder.parent / "h2-kube-proxy.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                "kind": "KubeProxyConfiguration",
                "mode": "iptables",
                "hostnameOverride": "node1",
                "clusterCIDR": "10.246.0.0/16",
                "nodePortAddresses": ["primary", "localhost"],
                "healthzBindAddress": "127.0.0.1:10266",
                "metricsBindAddress": "127.0.0.1:10259",
                "iptables": {"syncPeriod": "2s", "minSyncPeriod": "100ms"},
            }
        )
    )
    n = Node(folder, config, folder.parent / "h2-state")
    create()
    servers = []
    try:
        servers = start_servers()
        subprocess.run(
            ["ip", "netns", "exec", N1, "iptables-restore", "--noflush"],
            input=FIREWALL,
            text=True,
            check=True,
        )
        n.route_localnet_before = route_localnet()
        log = open(folder.parent / "h2-proxy.log", "w")  # noqa: SIM115
        n.proxy = subprocess.Popen(
            [
                "ip", "netns", "exec", N1, KPYOPS, "proxy", "--config", str(config),
                "--services-dir", str(folder), "--poll-interval", "0.1",
                "--node-ip", N1_IP, "--node-zone", "zone-a", "--state-dir", str(n.state),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        net.wait_until(lambda: n.syncs() >= 1, timeout=15)
        yield n
    finally:
        if n.proxy is not None and n.proxy.poll() is None:
            n.proxy.terminate()
            n.proxy.wait(10)
        for s in servers:
            s.kill()
            s.wait()
        destroy()


def test_health_check_node_port_follows_local_endpoints(node):
    ports = [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": NODE_PORT}]
    lb = m.service(
        "lb",
        "10.97.0.10",
        ports,
        type="LoadBalancer",
        externalTrafficPolicy="Local",
        healthCheckNodePort=HC_PORT,
    )
    url = f"http://{N1_IP}:{HC_PORT}/"
    node.synced_after(
        lambda: node.put(
            "lb", lb, m.endpoint_slice("lb", [endpoint("h2-p1"), endpoint("h2-p3")], PORTS)
        )
    )
    status, body = net.http_get(N2, url)  # through node 1's NodePort-range DROP rule
    assert status == 200, body
    assert yaml.safe_load(body) == {
        "service": {"namespace": "default", "name": "lb"},
        "localEndpoints": 1,
        "serviceProxyHealthy": True,
    }
    node.synced_after(
        lambda: node.put("lb", lb, m.endpoint_slice("lb", [endpoint("h2-p3")], PORTS))
    )
    status, body = net.http_get(N2, url)
    assert status == 503 and yaml.safe_load(body)["localEndpoints"] == 0, body
    node.synced_after(lambda: node.remove("lb"))
    gone = in_ns(N2, "curl", "-s", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}", url,
                 check=False)  # fmt: skip
    assert gone.returncode != 0 and gone.stdout in ("", "000"), gone


def test_primary_node_port_address_only(node):
    ports = [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": NODE_PORT}]
    node.synced_after(
        lambda: node.put(
            "np",
            m.service("np", "10.97.0.11", ports, type="NodePort"),
            m.endpoint_slice("np", [endpoint("h2-p1"), endpoint("h2-p3")], PORTS),
        )
    )
    on_primary = Counter(backends(connect(N2, N1_IP, NODE_PORT, 20)))
    assert set(on_primary) == {"h2-p1", "h2-p3"}, on_primary
    # Node 1's other address is not primary: no DNAT, so the firewall's DROP answers.
    assert connect(N2, N1_OTHER_IP, NODE_PORT, 2) == ["TIMEOUT", "TIMEOUT"]
    node.synced_after(lambda: node.remove("np"))


def test_zone_hints_keep_traffic_in_the_node_zone(node):
    def put(hints: bool, **spec) -> None:
        eps = [endpoint("h2-p1", hints), endpoint("h2-p3", hints)]
        svc = m.service("zoned", "10.97.0.12", [{"name": "http", "port": 80, "targetPort": 8080}],
                        **spec)  # fmt: skip
        node.synced_after(lambda: node.put("zoned", svc, m.endpoint_slice("zoned", eps, PORTS)))

    put(True, trafficDistribution="PreferClose")
    same_zone = Counter(backends(connect(N1, "10.97.0.12", 80, 30)))
    assert same_zone == Counter({"h2-p1": 30}), same_zone
    put(False, trafficDistribution="PreferClose")  # one endpoint without hints: all of them
    spread = Counter(backends(connect(N1, "10.97.0.12", 80, 40)))
    assert set(spread) == {"h2-p1", "h2-p3"}, spread
    put(True)  # hints present but the Service does not ask for them
    spread = Counter(backends(connect(N1, "10.97.0.12", 80, 40)))
    assert set(spread) == {"h2-p1", "h2-p3"}, spread


def test_node_hints_come_before_zone_hints(node):
    def put(p1_node: str, p3_node: str) -> None:
        eps = [endpoint("h2-p1", True, p1_node), endpoint("h2-p3", True, p3_node)]
        svc = m.service("near", "10.97.0.13", [{"name": "http", "port": 80, "targetPort": 8080}],
                        trafficDistribution="PreferSameNode")  # fmt: skip
        node.synced_after(lambda: node.put("near", svc, m.endpoint_slice("near", eps, PORTS)))

    # Zone hints alone would pick h2-p1 (zone-a, as node1); the node hint says h2-p3.
    put("node2", "node1")
    same_node = Counter(backends(connect(N1, "10.97.0.13", 80, 30)))
    assert same_node == Counter({"h2-p3": 30}), same_node
    # No endpoint hinted for node1: the zone hints decide.
    put("node2", "node3")
    same_zone = Counter(backends(connect(N1, "10.97.0.13", 80, 30)))
    assert same_zone == Counter({"h2-p1": 30}), same_zone
    node.synced_after(lambda: node.remove("near"))


def test_cleanup_puts_route_localnet_back(node):
    assert node.route_localnet_before == "0"
    assert route_localnet() == "1"  # localhost NodePorts (nodePortAddresses has localhost)
    assert (node.state / "route_localnet.orig").read_text() == "0\n"
    node.proxy.terminate()
    assert node.proxy.wait(10) == 0
    assert route_localnet() == "1"  # stopping is not cleaning up
    cleanup = [KPYOPS, "proxy", "--config", str(node.config), "--cleanup"]
    done = in_ns(N1, *cleanup, "--state-dir", str(node.state))
    assert done.returncode == 0, done.stderr
    assert route_localnet() == "0"
    assert not (node.state / "route_localnet.orig").exists()
    assert "KUBE-SERVICES" not in in_ns(N1, "iptables-save").stdout
