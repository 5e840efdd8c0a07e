"""Partial syncs end where a full sync of the same maps ends (property-style, seeded).

Random sequences of service and endpoint additions, changes and removals are applied to one
IpvsDataplane through partial syncs; after each step its IPVS table (FakeIpvsKernel), ipset
contents, kube-ipvs0 addresses and iptables chains are compared with those of a fresh
dataplane doing one full sync of the same maps. The pools are small on purpose, so service
ports collide: shared ClusterIPs (ports of one Service), shared NodePort members and
virtual servers, shared external IPs, the same endpoint behind several services.
"""

from __future__ import annotations

import random

import pytest
from ipvs_fakes import FakeDevice, FakeTools
from ipvs_kernel import FakeIpvsKernel
from pyroute2.netlink.generic import ipvs as genl

from kpyops.proxy.config import ProxyConfig
from kpyops.proxy.ipvs.dataplane import IpvsDataplane
from kpyops.proxy.ipvs.netlink import IpvsClient
from kpyops.proxy.model import Endpoint, ServicePort, ServicePortName

NODES_A = ["192.168.50.2", "127.0.0.1"]
NODES_B = ["192.168.50.2", "192.168.60.2", "127.0.0.1"]
SERVICES = [f"svc-{i}" for i in range(5)]
PORT_NAMES = ["", "http", "dns"]
CLUSTER_IPS = ["10.96.0.1", "10.96.0.2", "10.96.0.3", "10.96.0.4", "10.96.0.5", "10.96.0.6"]
EXTERNAL_IPS = ["203.0.113.1", "203.0.113.2", "192.168.50.2"]  # the last is a node IP
LB_IPS = ["198.51.100.1", "198.51.100.2"]
SOURCE_RANGES = ["10.0.0.0/8", "192.168.50.0/24", "fd00::/64"]
ENDPOINT_IPS = [f"10.244.{n}.{h}" for n in (1, 2) for h in (2, 3, 4)]


class Node:
    """One dataplane with its fake kernel, tools and device."""

    def __init__(self, nodes: list[str]) -> None:
        self.nodes = nodes
        self.kernel = FakeIpvsKernel()
        config = ProxyConfig(mode="ipvs", hostname="node-a", node_zone="zone-a")
        self.dp = IpvsDataplane(
            config,
            4,
            ipvs=IpvsClient(self.kernel),
            device=FakeDevice(),
            node_ips=lambda: self.nodes,
        )
        self.tools = FakeTools()
        self.dp.runner = self.dp.ipsets.runner = self.dp.rules.runner = self.tools

    def snapshot(self) -> dict:
        client = IpvsClient(self.kernel)
        table = {
            vs: sorted((rs.address, rs.port, rs.weight) for rs in client.list_real_servers(vs))
            for vs in client.list_virtual_servers()
        }
        return {
            "ipvs": table,
            "ipsets": self.tools.sets,
            "bound": self.dp.device.addresses(),
            "iptables": self.tools.restored.get("iptables-restore"),
        }


def random_service(rng: random.Random, name: ServicePortName) -> ServicePort:
    ips = (rng.choice(CLUSTER_IPS),)
    if rng.random() < 0.2:
        ips += ("fd00:96::1",)  # dual-stack: the IPv4 dataplane ignores the IPv6 address
    lb = tuple(rng.sample(LB_IPS, rng.randint(0, 2))) if rng.random() < 0.4 else ()
    return ServicePort(
        name=name,
        cluster_ips=ips,
        port=rng.choice([53, 80, 443]),
        protocol=name.protocol,
        node_port=rng.choice([0, 0, 30001, 30002]),
        external_ips=tuple(rng.sample(EXTERNAL_IPS, rng.randint(0, 2))),
        load_balancer_ips=lb,
        load_balancer_source_ranges=tuple(rng.sample(SOURCE_RANGES, rng.randint(0, 2))),
        health_check_node_port=rng.choice([0, 0, 32000, 32001]),
        session_affinity_client_ip=rng.random() < 0.3,
        sticky_max_age_seconds=rng.choice([60, 10800]),
        external_policy_local=rng.random() < 0.3,
        internal_policy_local=rng.random() < 0.2,
        topology_aware=rng.random() < 0.2,
    )


def random_endpoints(rng: random.Random) -> tuple[Endpoint, ...]:
    eps = []
    for ip in rng.sample(ENDPOINT_IPS, rng.randint(0, 4)):
        ready = rng.random() < 0.7
        eps.append(
            Endpoint(
                ip,
                rng.choice([8080, 53]),
                ready=ready,
                serving=ready or rng.random() < 0.5,
                terminating=not ready and rng.random() < 0.7,
                is_local=ip.startswith("10.244.1."),
                zone_hints=(rng.choice(["zone-a", "zone-b"]),) if rng.random() < 0.8 else (),
                node_hints=(rng.choice(["node-a", "node-b"]),) if rng.random() < 0.7 else (),
            )
        )
    return tuple(sorted(eps))


def random_name(rng: random.Random, services: dict) -> ServicePortName:
    if services and rng.random() < 0.6:
        return rng.choice(sorted(services))
    proto = rng.choice(["TCP", "TCP", "UDP", "SCTP"])
    return ServicePortName("default", rng.choice(SERVICES), rng.choice(PORT_NAMES), proto)


def step(rng: random.Random, services: dict, endpoints: dict) -> set[ServicePortName]:
    """One to three random changes; returns the service ports they touched."""
    changed = set()
    for _ in range(rng.randint(1, 3)):
        name = random_name(rng, services)
        action = rng.choice(["service", "service", "endpoints", "endpoints", "remove", "no-eps"])
        if action == "service":
            svc = random_service(rng, name)
            if name in services and rng.random() < 0.5:  # the ports of one Service share its IP
                svc = ServicePort(**{**vars(svc), "cluster_ips": services[name].cluster_ips})
            services[name] = svc
        elif action == "endpoints":
            endpoints[name] = random_endpoints(rng)
        elif action == "remove":
            services.pop(name, None)
            endpoints.pop(name, None)
        else:
            endpoints.pop(name, None)
        changed.add(name)
    return changed


def full_sync_of(services: dict, endpoints: dict, nodes: list[str]) -> dict:
    fresh = Node(nodes)
    fresh.dp.sync(dict(services), dict(endpoints), None)
    return fresh.snapshot()


@pytest.mark.parametrize("seed", range(15))
def test_partial_syncs_match_a_full_sync(seed):
    rng = random.Random(seed)
    node = Node(list(NODES_A))
    services: dict = {}
    endpoints: dict = {}
    node.dp.sync(services, endpoints, None)
    partial_syncs = 0
    for _ in range(25):
        if rng.random() < 0.05:  # a node address changes; the periodic sync notices
            node.nodes = list(NODES_B if node.nodes == NODES_A else NODES_A)
            changed: set | None = set()
        else:
            changed = step(rng, services, endpoints)
            if rng.random() < 0.05:
                changed = None  # the hourly full sync, between partial ones
        before_calls, before_requests = len(node.tools.calls), len(node.kernel.requests)
        result = node.dp.sync(services, endpoints, changed)
        if not result.full:
            partial_syncs += 1
            calls = node.tools.calls[before_calls:]
            assert ("ipset", "save") not in calls  # a partial sync reads nothing back
            dumps = [m["cmd"] for m in node.kernel.requests[before_requests:]]
            assert genl.IPVS_CMD_GET_SERVICE not in dumps
        assert node.snapshot() == full_sync_of(services, endpoints, node.nodes), changed
    assert partial_syncs > 15  # the steps above were mostly partial syncs


def test_a_partial_sync_touches_only_what_changed():
    node = Node(list(NODES_A))
    names = [ServicePortName("default", f"s{i}", "", "TCP") for i in range(50)]
    services = {
        n: ServicePort(n, (f"10.96.1.{i}",), 80, node_port=30100 + i) for i, n in enumerate(names)
    }
    endpoints = {n: (Endpoint(f"10.244.3.{i}", 8080),) for i, n in enumerate(names)}
    node.dp.sync(services, endpoints, None)
    before_calls, before_requests = len(node.tools.calls), len(node.kernel.requests)

    endpoints[names[7]] = (Endpoint("10.244.4.7", 8080),)
    result = node.dp.sync(services, endpoints, {names[7]})

    # no set member changed and no set became (non-)empty: no ipset or iptables process
    assert node.tools.calls[before_calls:] == []
    commands = [m["cmd"] for m in node.kernel.requests[before_requests:]]
    # ClusterIP and NodePort virtual servers: list, add the new real server, delete the old
    assert commands.count(genl.IPVS_CMD_GET_DEST) == 2
    assert commands.count(genl.IPVS_CMD_NEW_DEST) == 2
    assert commands.count(genl.IPVS_CMD_DEL_DEST) == 2
    assert len(commands) == 6
    assert (result.full, result.services_written) == (False, 1)
    assert node.snapshot() == full_sync_of(services, endpoints, node.nodes)


def test_a_new_service_adds_its_members_in_one_batch_and_rewrites_no_chain():
    node = Node(list(NODES_A))
    a = ServicePortName("default", "a", "", "TCP")
    services = {a: ServicePort(a, ("10.96.1.1",), 80, node_port=30100)}
    node.dp.sync(services, {}, None)
    before = len(node.tools.calls)

    b = ServicePortName("default", "b", "", "TCP")
    services[b] = ServicePort(b, ("10.96.1.2",), 80, node_port=30101)
    node.dp.sync(services, {}, {b})

    assert node.tools.calls[before:] == [("ipset", "-exist", "restore")]
    assert node.tools.sets["KUBE-CLUSTER-IP"] == {"10.96.1.1,tcp:80", "10.96.1.2,tcp:80"}
    assert node.dp.device.addresses() == {"10.96.1.1", "10.96.1.2"}

    udp = ServicePortName("default", "c", "", "UDP")
    services[udp] = ServicePort(udp, ("10.96.1.3",), 53, protocol="UDP", node_port=30102)
    result = node.dp.sync(services, {}, {udp})
    assert result.details["rules_written"] == 1  # KUBE-NODE-PORT-UDP is no longer empty
    assert "KUBE-NODE-PORT-UDP" in node.tools.restored["iptables-restore"]
