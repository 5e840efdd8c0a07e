"""Network namespaces for the proxy's integration tests: two nodes, pods, real servers.

    kpa-pxc1 (client pod 10.244.1.50)      kpa-pxp3 (pod 10.244.2.13)
    kpa-pxp1 (pod 10.244.1.11)  \\            |
    kpa-pxp2 (pod 10.244.1.12) -- kpa-pxn1 ===== kpa-pxn2
                              192.168.77.1   192.168.77.2

Pods hang off their node by a veth each, with a /32 address and the node as their only
router (as Calico does), so every pod-to-service packet crosses the node's netfilter hooks in
both directions. The proxy runs in ``kpa-pxn1``; ``kpa-pxn2`` is "another node" for NodePort.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from kpyops.proxy import manifests as m

NODE1, NODE2 = "kpa-pxn1", "kpa-pxn2"
NODE1_IP, NODE2_IP = "192.168.77.1", "192.168.77.2"
NODE_NAMES = {NODE1: "node1", NODE2: "node2"}
GATEWAY = {NODE1: "10.244.1.1", NODE2: "10.244.2.1"}
TCP_PORT, UDP_PORT = 8080, 8081


@dataclass(frozen=True)
class Pod:
    ns: str
    node: str
    ip: str

    @property
    def name(self) -> str:
        return self.ns


P1 = Pod("kpa-pxp1", NODE1, "10.244.1.11")
P2 = Pod("kpa-pxp2", NODE1, "10.244.1.12")
P3 = Pod("kpa-pxp3", NODE2, "10.244.2.13")
CLIENT = Pod("kpa-pxc1", NODE1, "10.244.1.50")
BACKENDS = (P1, P2, P3)
ALL_NS = (NODE1, NODE2, P1.ns, P2.ns, P3.ns, CLIENT.ns)

SERVER = r"""
import socket, sys, threading
name = sys.argv[1]
def tcp():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[2]))); s.listen(128)
    while True:
        c, addr = s.accept()
        try:
            c.sendall(f"{name} {addr[0]}\n".encode())
        finally:
            c.close()
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", int(sys.argv[3])))
    while True:
        data, addr = s.recvfrom(2048)
        s.sendto(f"{name} {addr[0]}\n".encode(), addr)
threading.Thread(target=udp, daemon=True).start()
print("ready", flush=True)
tcp()
"""

CLIENT_CODE = r"""
import json, socket, sys
host, port, count, proto, sport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
out = []
for _ in range(count):
    try:
        if proto == "tcp":
            s = socket.create_connection((host, port), timeout=2)
            out.append(s.recv(200).decode().strip()); s.close()
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
            if sport:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", sport))
            s.sendto(b"hi", (host, port)); out.append(s.recvfrom(200)[0].decode().strip()); s.close()
    except ConnectionRefusedError:
        out.append("REFUSED")
    except OSError as e:
        out.append("TIMEOUT" if isinstance(e, TimeoutError) else "ERROR " + type(e).__name__)
print(json.dumps(out))
"""


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, check=check)


def in_ns(ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", ns, *args, check=check)


def destroy() -> None:
    for ns in ALL_NS:
        sh("ip", "netns", "del", ns, check=False)


def create() -> None:
    destroy()
    for ns in ALL_NS:
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    for node in (NODE1, NODE2):
        for key in (
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ):
            in_ns(node, "sysctl", "-qw", key)
    sh(
        "ip",
        "-n",
        NODE1,
        "link",
        "add",
        "kpan-12",
        "type",
        "veth",
        "peer",
        "name",
        "kpan-21",
        "netns",
        NODE2,
    )
    for node, dev, ip in ((NODE1, "kpan-12", NODE1_IP), (NODE2, "kpan-21", NODE2_IP)):
        sh("ip", "-n", node, "addr", "add", f"{ip}/24", "dev", dev)
        sh("ip", "-n", node, "link", "set", dev, "up")
    sh("ip", "-n", NODE1, "route", "add", "10.244.2.0/24", "via", NODE2_IP)
    sh("ip", "-n", NODE2, "route", "add", "10.244.1.0/24", "via", NODE1_IP)
    # Service addresses need a route before nat OUTPUT rewrites them (as a real node's default).
    sh("ip", "-n", NODE1, "route", "add", "default", "via", NODE2_IP)
    for pod in (*BACKENDS, CLIENT):
        dev = "kpav-" + pod.ns[-3:]
        gw = GATEWAY[pod.node]
        sh(
            "ip",
            "-n",
            pod.node,
            "link",
            "add",
            dev,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            pod.ns,
        )
        sh("ip", "-n", pod.node, "addr", "add", f"{gw}/32", "dev", dev)
        sh("ip", "-n", pod.node, "link", "set", dev, "up")
        sh("ip", "-n", pod.node, "route", "add", f"{pod.ip}/32", "dev", dev)
        sh("ip", "-n", pod.ns, "addr", "add", f"{pod.ip}/32", "dev", "eth0")
        sh("ip", "-n", pod.ns, "link", "set", "eth0", "up")
        sh("ip", "-n", pod.ns, "route", "add", f"{gw}/32", "dev", "eth0")
        sh("ip", "-n", pod.ns, "route", "add", "default", "via", gw)


def start_servers() -> list[subprocess.Popen]:
    procs = []
    for pod in BACKENDS:
        proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                pod.ns,
                sys.executable,
                "-c",
                SERVER,
                pod.name,
                str(TCP_PORT),
                str(UDP_PORT),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout.readline().strip() == "ready"
        procs.append(proc)
    return procs


def connect(
    ns: str, host: str, port: int, count: int = 1, proto: str = "tcp", source_port: int = 0
) -> list[str]:
    """``count`` new connections (or UDP exchanges) from ``ns``; each answer is
    "<backend pod> <client address the backend saw>", or REFUSED / TIMEOUT / ERROR."""
    out = in_ns(
        ns, sys.executable, "-c", CLIENT_CODE, host, str(port), str(count), proto, str(source_port)
    )
    return json.loads(out.stdout)


def backends(answers: list[str]) -> list[str]:
    return [a.split()[0] for a in answers]


def http_get(ns: str, url: str) -> tuple[int, str]:
    code = (
        "import sys, urllib.request, urllib.error\n"
        "try:\n r = urllib.request.urlopen(sys.argv[1], timeout=3); print(r.status); print(r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n print(e.code); print(e.read().decode())\n"
    )
    out = in_ns(ns, sys.executable, "-c", code, url).stdout
    status, _, body = out.partition("\n")
    return int(status), body


def metric(ns: str, name: str, port: int = 10249) -> float | None:
    """One unlabelled sample from the proxy's /metrics."""
    _, body = http_get(ns, f"http://127.0.0.1:{port}/metrics")
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")


KPYOPS = str(Path(sys.executable).parent / "kpyops")
PORTS = [{"name": "http", "port": TCP_PORT, "protocol": "TCP"}]
UDP_PORTS = [{"name": "dns", "port": UDP_PORT, "protocol": "UDP"}]


def now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def eps(*pods: Pod, ready: bool = True) -> list[dict]:
    return [m.endpoint(p.ip, node=NODE_NAMES[p.node], ready=ready) for p in pods]


def service(name: str, ip: str, ports=PORTS, **spec) -> dict:
    return m.service(name, ip, ports, **spec)


class ServicesFolder:
    """The folder a proxy reads Services and EndpointSlices from (``--services-dir``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def put(self, name: str, *objects: dict) -> None:
        """Write one file atomically (the proxy must never see half of it)."""
        tmp = self.folder / f".{name}.tmp"
        tmp.write_text(yaml.safe_dump_all(objects))
        tmp.rename(self.folder / f"{name}.yaml")

    def remove(self, name: str) -> None:
        (self.folder / f"{name}.yaml").unlink()


class Cluster(ServicesFolder):
    """The services folder the proxy in node 1 reads, and ways to wait for it to sync."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.proxy: subprocess.Popen | None = None

    def syncs(self) -> float:
        return metric(NODE1, "kubeproxy_sync_proxy_rules_duration_seconds_count") or 0

    def change_and_wait(self, change) -> None:
        """Make a change, then wait for the sync that applied it (and no longer)."""
        before = time.time()
        change()

        def applied():
            queued = metric(NODE1, "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds") or 0
            synced = metric(NODE1, "kubeproxy_sync_proxy_rules_last_timestamp_seconds") or 0
            return queued >= before and synced >= queued

        wait_until(applied, timeout=10)

    def start_proxy(self, config: Path, *args: str) -> None:
        """Run ``kpyops proxy`` in node 1 on this folder; return once it has synced."""
        self.config = config
        self.log_path = self.folder.parent / "proxy.log"
        log = open(self.log_path, "w")  # noqa: SIM115
        self.proxy = subprocess.Popen(
            ["ip", "netns", "exec", NODE1, KPYOPS, "proxy", "--config", str(config),
             "--services-dir", str(self.folder), "--poll-interval", "0.1", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(self._up, timeout=15)

    def _up(self) -> bool:
        try:
            return self.syncs() >= 1
        except (subprocess.CalledProcessError, ValueError):
            return False

    def stop_proxy(self) -> None:
        if self.proxy is not None and self.proxy.poll() is None:
            self.proxy.terminate()
            self.proxy.wait(10)


def proxy_config(path: Path, mode: str, sync_period: float, **extra) -> Path:
    """A KubeProxyConfiguration for node 1 (pod CIDR 10.244.0.0/16, local metrics)."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                "kind": "KubeProxyConfiguration",
                "mode": mode,
                "hostnameOverride": "node1",
                "clusterCIDR": "10.244.0.0/16",
                "healthzBindAddress": "127.0.0.1:10256",
                "metricsBindAddress": "127.0.0.1:10249",
                mode: {"syncPeriod": f"{sync_period}s", "minSyncPeriod": "100ms"},
                **extra,
            }
        )
    )
    return path


@contextmanager
def running_proxy(
    folder: Path, mode: str, sync_period: float, prepare: Callable[[Cluster], None], *args: str
) -> Iterator[Cluster]:
    """The namespaces and pod servers, ``prepare(cluster)`` (rules node 1 has before the
    proxy: they must survive it), the "web" service (10.96.0.10:80 -> P1, P2, P3), then the
    proxy in node 1 in ``mode`` (with ``args``); everything torn down at exit."""
    config = proxy_config(folder.parent / "kube-proxy.yaml", mode, sync_period)
    create()
    servers = []
    c = Cluster(folder)
    try:
        servers = start_servers()
        prepare(c)
        c.put(
            "web",
            service("web", "10.96.0.10", [{"name": "http", "port": 80, "targetPort": 8080}]),
            m.endpoint_slice("web", eps(*BACKENDS), PORTS, trigger_time=now_rfc3339()),
        )
        c.start_proxy(config, *args)
        yield c
    finally:
        c.stop_proxy()
        for s in servers:
            s.kill()
            s.wait()
        destroy()
