"""Partial syncs sent as netlink batches leave the kernel as a full sync (nft -f) would.

In a throwaway network namespace, an NftablesDataplane goes through a series of changes, each
a partial sync (endpoints replaced, scaled to none and back, affinity on and off, NodePort,
externalIPs, a load balancer with a source range, UDP and SCTP ports, a service deleted);
another dataplane, in a second namespace, writes the final state in one full sync. The two
tables must be the same: every rule's bytecode (``nft --debug=netlink list table``), every
chain, set and map, every element; handles, counters and the order of hashed elements aside.
Shapes the encoder does not translate (an anonymous set: two source ranges) go through
``nft -f`` instead, in the same series.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import replace

import pytest

from kpyops.proxy.dataplane import DataplaneError
from kpyops.proxy.model import Endpoint, ServicePort, ServicePortName
from kpyops.proxy.nftables import NftablesDataplane
from kpyops.proxy.nftables import names as n
from kpyops.proxy.nftables.transaction import Transaction
from kpyops.proxy.options import RuleOptions

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

PREFIX = f"kpa-nftp-{os.getpid()}"


def setns(fd: int) -> None:
    if hasattr(os, "setns"):
        os.setns(fd, os.CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        raise OSError(ctypes.get_errno(), "setns")


@contextmanager
def netns(name: str):
    """A fresh network namespace, entered by this thread until the block ends."""
    subprocess.run(["ip", "netns", "add", name], check=True)
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        setns(target)
        yield name
    finally:
        setns(home)
        os.close(home)
        os.close(target)
        subprocess.run(["ip", "netns", "del", name], check=False)


def nft(*args: str) -> str:
    return subprocess.run(["nft", *args], capture_output=True, text=True, check=True).stdout


def table_state(family: int) -> dict:
    """Our table as comparable data: rule bytecode per chain, objects, sorted elements."""
    ref = n.table_ref(family).split()
    rules: dict[str, list[list[str]]] = defaultdict(list)
    elements: dict[str, list[str]] = defaultdict(list)
    current: list[str] | None = None
    set_name = None
    for line in nft("--debug=netlink", "list", "table", *ref).splitlines():
        if line.startswith("table "):
            break  # the text listing follows the bytecode
        head = re.match(rf"^{ref[0]} {n.TABLE} (@?)(\S+)", line)
        if head:
            set_name = head.group(2) if head.group(1) else None
            current = None if set_name else []
            if current is not None:
                rules[head.group(2)].append(current)
        elif line.strip() and set_name:
            elements[set_name] += [e.strip() for e in line.split("\t") if e.strip()]
        elif line.strip() and current is not None:
            current.append(line.strip())
    objects = {}
    for obj in json.loads(nft("-j", "list", "table", *ref))["nftables"]:
        ((kind, body),) = obj.items()
        if kind in ("metainfo", "rule"):
            continue
        body = {k: v for k, v in body.items() if k != "handle"}
        if "elem" in body:
            body["elem"] = sorted(json.dumps(e, sort_keys=True) for e in body["elem"])
        objects[f"{kind} {body['name']}"] = body
    return {
        "rules": dict(rules),
        "elements": {k: sorted(v) for k, v in elements.items()},
        "objects": objects,
    }


def spn(name: str, port: str = "http", proto: str = "TCP") -> ServicePortName:
    return ServicePortName("test", name, port, proto)


def scenario(family: int):
    """(services, endpoints, changed) after each step; each step one partial sync."""
    six = family == 6

    def ip(v4: str) -> str:
        a, b, c, d = v4.split(".")
        return f"fd00:{a}:{b}:{c}::{d}" if six else v4

    def eps(*last: int, local: bool = False) -> tuple[Endpoint, ...]:
        return tuple(Endpoint(ip(f"10.200.0.{i}"), 8080, is_local=local) for i in last)

    web, dns, sctp, ext, fw, fw2 = (
        spn("web"), spn("dns", "dns", "UDP"), spn("sig", "sig", "SCTP"), spn("ext"),
        spn("lb"), spn("lb2"),
    )  # fmt: skip
    services = {
        web: ServicePort(web, (ip("10.96.0.10"),), 80),
        dns: ServicePort(dns, (ip("10.96.0.20"),), 53, "UDP"),
    }
    endpoints = {web: eps(1, 2, 3), dns: eps(4, 5)}
    yield services, endpoints, None  # the first (full) sync
    suffix = "/120" if six else "/24"
    sticky = replace(services[web], session_affinity_client_ip=True, sticky_max_age_seconds=600)
    signalling = ServicePort(sctp, (ip("10.96.0.30"),), 3868, "SCTP")
    external = ServicePort(
        ext, (ip("10.96.0.40"),), 80, node_port=30080, external_ips=(ip("192.0.2.40"),),
        external_policy_local=True,
    )  # fmt: skip
    balancer = ServicePort(
        fw, (ip("10.96.0.50"),), 443, node_port=30443, load_balancer_ips=(ip("198.51.100.50"),),
        load_balancer_source_ranges=(ip("203.0.113.0") + suffix,),
    )  # fmt: skip
    steps = [
        ({}, {web: eps(1, 2, 6)}),  # one endpoint replaced
        ({}, {web: eps(6)}),
        ({}, {web: ()}),  # no endpoints: reject
        ({}, {web: eps(7, 8)}),
        ({web: sticky}, {}),  # ClientIP affinity on
        ({sctp: signalling}, {sctp: eps(9)}),
        ({ext: external}, {ext: eps(10, local=True) + eps(11)}),  # NodePort, Local policy
        ({fw: balancer}, {fw: eps(12)}),  # one source range
        ({web: replace(sticky, session_affinity_client_ip=False)}, {}),
        ({dns: None}, {dns: None}),  # deleted
        ({ext: None}, {ext: eps(11)}),  # deleted, its endpoints still listed
    ]
    for svc_changes, ep_changes in steps:
        changed = set(svc_changes) | set(ep_changes)
        for key, value in svc_changes.items():
            if value is None:
                services.pop(key, None)
            else:
                services[key] = value
        for key, value in ep_changes.items():
            if value is None:
                endpoints.pop(key, None)
            else:
                endpoints[key] = value
        yield dict(services), dict(endpoints), changed
    # two source ranges: an anonymous set, which nft -f writes
    services[fw2] = ServicePort(
        fw2, (ip("10.96.0.60"),), 443, load_balancer_ips=(ip("198.51.100.60"),),
        load_balancer_source_ranges=(ip("203.0.113.0") + suffix, ip("192.0.2.0") + suffix),
    )  # fmt: skip
    endpoints[fw2] = eps(13)
    yield dict(services), dict(endpoints), {fw2}


OPTIONS = {
    "ipv4": RuleOptions(cluster_cidrs=("10.128.0.0/9",)),  # a prefix through a mask
    "ipv6": RuleOptions(family=6, cluster_cidrs=("fd00:10::/64",)),  # whole bytes
    "ipv4-masquerade-all": RuleOptions(masquerade_all=True),
}


@pytest.mark.parametrize("variant", sorted(OPTIONS))
def test_partial_netlink_syncs_equal_a_full_sync(variant):
    opts = OPTIONS[variant]
    with netns(f"{PREFIX}-a"):
        dp = NftablesDataplane(opts, stale_delay=0)
        paths = []
        for services, endpoints, changed in scenario(opts.family):
            result = dp.sync(services, endpoints, changed)
            assert result.full == (changed is None)
            if changed is not None:
                paths.append(result.details["netlink_batch"])
        dp.sync(services, endpoints, set())  # deletes the chains left unused
        partial = table_state(opts.family)
    assert paths[:-1] == [1.0] * (len(paths) - 1), paths  # netlink batches...
    assert paths[-1] == 0.0  # ...but nft -f for the anonymous set
    with netns(f"{PREFIX}-b"):
        fresh = NftablesDataplane(opts)
        assert fresh.sync(services, endpoints, None).full
        full = table_state(opts.family)
    assert partial["objects"].keys() == full["objects"].keys()
    assert partial == full


def test_a_refused_batch_changes_nothing():
    opts = OPTIONS["ipv4"]
    with netns(f"{PREFIX}-c"):
        dp = NftablesDataplane(opts)
        services, endpoints, _ = next(scenario(4))
        dp.sync(services, endpoints, None)
        before = table_state(4)
        tx = Transaction(4)
        tx.add_chain("service-broken/x")
        tx.chains.append(("service-broken/x", ("ip saddr 10.0.0.1 goto no-such-chain",)))
        with pytest.raises(DataplaneError, match="No such file or directory"):
            dp.commands.apply_transaction(tx)
        assert table_state(4) == before  # the chain was not created either


def test_a_large_partial_sync_is_one_batch_too():
    """300 services whose 10 endpoints are all replaced at once: a batch of thousands of
    messages (megabytes, over the socket's default send buffer) in one datagram."""
    opts = OPTIONS["ipv4"]
    names = [spn(f"svc-{i}") for i in range(300)]
    services = {s: ServicePort(s, (f"10.96.{i // 200}.{i % 200 + 1}",), 80)
                for i, s in enumerate(names)}  # fmt: skip

    def endpoints(base: int) -> dict:
        return {
            s: tuple(Endpoint(f"10.{base + i // 200}.{i % 200}.{j + 1}", 8080) for j in range(10))
            for i, s in enumerate(names)
        }

    with netns(f"{PREFIX}-d"):
        dp = NftablesDataplane(opts, stale_delay=0)
        dp.sync(services, endpoints(100), None)
        result = dp.sync(services, endpoints(150), set(names))
        assert result.details["netlink_batch"] == 1.0 and result.services_written == 300
        assert result.details["nft_bytes"] > 1 << 20  # its nft text, for scale
        dp.sync(services, endpoints(150), set())
        partial = table_state(4)
    with netns(f"{PREFIX}-e"):
        NftablesDataplane(opts).sync(services, endpoints(150), None)
        assert partial == table_state(4)
