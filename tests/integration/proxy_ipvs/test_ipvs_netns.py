"""The IPVS dataplane's ipset, iptables and interface parts on a real kernel, in a netns.

Our test kernels have no IPVS and no dummy driver, so IPVS itself is the byte-level fake
kernel here and ``kube-ipvs0`` is stood in for by a bridge link (same address handling);
everything else (ipsets, iptables-restore, jumps, address binding, the access filter, cleanup)
is the real thing. Needs root.
"""

import os
import re
import shutil
import subprocess
import uuid

import pytest
from ipvs_kernel import FakeIpvsKernel

from kpyops.proxy.config import IpvsConfig, ProxyConfig
from kpyops.proxy.ipvs.capability import check_ipvs_support
from kpyops.proxy.ipvs.dataplane import IpvsDataplane
from kpyops.proxy.ipvs.device import IpvsDevice
from kpyops.proxy.ipvs.netlink import IpvsClient
from kpyops.proxy.model import Endpoint, ServicePort, ServicePortName

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("ipset"), reason="needs root and ipset"
    ),
]

NODE_IP = "192.168.77.2"


def sh(ns, *args, check=True, stdin=None):
    return subprocess.run(
        ["ip", "netns", "exec", ns, *args], capture_output=True, text=True, check=check, input=stdin
    ).stdout


def state(ns):
    """What cleanup must restore: rules (without counters) and ipsets."""
    rules = [line for line in sh(ns, "iptables-save").splitlines() if not line.startswith("#")]
    return rules, sh(ns, "ipset", "list")


@pytest.fixture
def netns():
    name = f"kpb-ipvs-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        sh(name, "ip", "link", "set", "lo", "up")
        sh(name, "ip", "link", "add", "kpb-eth0", "type", "bridge")
        sh(name, "ip", "addr", "add", f"{NODE_IP}/24", "dev", "kpb-eth0")
        sh(name, "ip", "link", "set", "kpb-eth0", "up")
        # someone else's rule and set, which must survive everything we do
        sh(name, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "2222", "-j", "ACCEPT")
        sh(name, "iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "10.9.0.0/16", "-j", "RETURN")
        sh(name, "ipset", "create", "kpb-foreign", "hash:ip")
        sh(name, "ipset", "add", "kpb-foreign", "10.9.9.9")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def dataplane(ns, kernel=None, **ipvs):
    config = ProxyConfig(
        mode="ipvs", hostname="node-a", cluster_cidrs=("10.244.0.0/16",), ipvs=IpvsConfig(**ipvs)
    )
    device = IpvsDevice(name="kpb-ipvs0", netns=ns, kind="bridge")
    return IpvsDataplane(
        config, 4, ipvs=IpvsClient(kernel or FakeIpvsKernel()), netns=ns, device=device
    )


def svc(name, ip, port=80, **kw):
    proto = kw.setdefault("protocol", "TCP")
    return ServicePort(
        name=ServicePortName("default", name, "", proto), cluster_ips=(ip,), port=port, **kw
    )


def maps(*pairs):
    return {s.name: s for s, _ in pairs}, {s.name: tuple(e) for s, e in pairs}


def ipset_members(ns, name):
    out = sh(ns, "ipset", "save", name, check=False)
    return {line.split()[2] for line in out.splitlines() if line.startswith("add ")}


WEB = svc("web", "10.96.0.10", node_port=30080)
DNS = svc("dns", "10.96.0.53", port=53, protocol="UDP", node_port=30053)
LOCAL_EP = Endpoint("10.244.1.2", 8080, node_name="node-a", is_local=True)
REMOTE_EP = Endpoint("10.244.2.2", 8080, node_name="node-b")


def test_capability_check_reports_what_this_kernel_lacks(netns):
    support = check_ipvs_support("rr", netns=netns)
    if support.ipvs_netlink and support.dummy_links:
        pytest.skip("this kernel has IPVS and dummy links")
    assert not support.ok
    text = "\n".join(support.problems)
    if not support.ipvs_netlink:
        assert "ip_vs" in text and "IPVS" in text
    if not support.dummy_links:
        assert "dummy" in text
    # the probe left nothing behind
    assert "kpyops-probe0" not in sh(netns, "ip", "-o", "link")


def test_sync_writes_ipsets_rules_and_addresses_and_resync_changes_nothing(netns):
    dp = dataplane(netns)
    first = dp.sync(*maps((WEB, [LOCAL_EP, REMOTE_EP]), (DNS, [])), None)
    assert first.details["ipset_added"] > 0

    assert ipset_members(netns, "KUBE-CLUSTER-IP") == {"10.96.0.10,tcp:80", "10.96.0.53,udp:53"}
    assert ipset_members(netns, "KUBE-NODE-PORT-TCP") == {"30080"}
    assert ipset_members(netns, "KUBE-NODE-PORT-UDP") == {"30053"}
    assert ipset_members(netns, "KUBE-LOOP-BACK") == {"10.244.1.2,tcp:8080,10.244.1.2"}
    assert ipset_members(netns, "KUBE-IPVS-IPS") == {"10.96.0.10", "10.96.0.53"}
    addrs = sh(netns, "ip", "-o", "-4", "addr", "show", "dev", "kpb-ipvs0")
    assert "10.96.0.10/32" in addrs and "10.96.0.53/32" in addrs

    nat = sh(netns, "iptables-save", "-t", "nat")
    assert '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES' in nat
    assert "--match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ" in nat
    assert "! -s 10.244.0.0/16" in nat
    assert "--match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ" in nat
    assert "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000" in nat
    assert "--match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE" in nat
    filt = sh(netns, "iptables-save", "-t", "filter")
    assert (
        '-A INPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER' in filt
    )

    before = state(netns)
    again = dp.sync(*maps((WEB, [LOCAL_EP, REMOTE_EP]), (DNS, [])), None)
    assert again.details["ipset_added"] == again.details["ipset_deleted"] == 0
    assert again.details["jumps_added"] == 0
    assert state(netns) == before


def test_batch_removes_members_of_deleted_services_and_unbinds_addresses(netns):
    dp = dataplane(netns)
    dp.sync(*maps((WEB, [LOCAL_EP]), (DNS, [])), None)
    result = dp.sync(*maps((WEB, [REMOTE_EP])), {DNS.name, WEB.name})
    assert ipset_members(netns, "KUBE-CLUSTER-IP") == {"10.96.0.10,tcp:80"}
    assert ipset_members(netns, "KUBE-NODE-PORT-UDP") == set()
    assert ipset_members(netns, "KUBE-LOOP-BACK") == set()
    assert result.details["addresses_unbound"] == 1
    addrs = sh(netns, "ip", "-o", "-4", "addr", "show", "dev", "kpb-ipvs0")
    assert "10.96.0.53" not in addrs
    # the NodePort UDP rule disappears with its last member, as kube-proxy's does
    assert "KUBE-NODE-PORT-UDP" not in sh(netns, "iptables-save", "-t", "nat")
    # the batch was a single ipset invocation
    batches = [c for c in dp.runner.calls if c[:2] == ("ipset", "-exist")]
    assert len(batches) == 2


def test_many_services_in_one_batch(netns):
    services = [
        svc(f"s{i}", f"10.96.{i // 250}.{i % 250 + 1}", node_port=30000 + i) for i in range(600)
    ]
    dp = dataplane(netns)
    result = dp.sync(*maps(*[(s, [REMOTE_EP]) for s in services]), None)
    assert len(ipset_members(netns, "KUBE-CLUSTER-IP")) == 600
    assert len(ipset_members(netns, "KUBE-NODE-PORT-TCP")) == 600
    assert result.services_written == 600
    restores = [c for c in dp.runner.calls if "restore" in " ".join(c)]
    assert len(restores) == 2  # one ipset batch, one iptables-restore


def test_access_filter_rejects_other_ports_of_service_addresses(netns):
    """Real traffic: kube-ipvs0 addresses only answer on service ports (KUBE-IPVS-FILTER)."""
    dp = dataplane(netns)
    dp.sync(*maps((WEB, [REMOTE_EP])), None)

    def listen(port):
        # a listener inside the namespace on the service address
        script = (
            "import socket,sys;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
            f"s.bind(('10.96.0.10',{port}));s.listen();print('up',flush=True);"
            "c,_=s.accept();c.sendall(b'hi');c.close()"
        )
        return subprocess.Popen(
            ["ip", "netns", "exec", netns, "python3", "-c", script],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    def connect(port):
        script = (
            f"import socket;s=socket.create_connection(('10.96.0.10',{port}),timeout=3);"
            "print(s.recv(2))"
        )
        return subprocess.run(
            ["ip", "netns", "exec", netns, "python3", "-c", script], capture_output=True, text=True
        )

    servers = [listen(80), listen(8081)]
    try:
        for s in servers:
            assert s.stdout.readline().strip() == "up"
        ok = connect(80)
        assert ok.returncode == 0 and "hi" in ok.stdout
        refused = connect(8081)
        assert refused.returncode != 0
        assert "ConnectionRefused" in refused.stderr
        # the service port's traffic from the node went through the masquerade marking
        counters = sh(netns, "iptables", "-t", "nat", "-L", "KUBE-MARK-MASQ", "-v", "-x", "-n")
        packets = int(counters.splitlines()[2].split()[0])
        assert packets >= 1
    finally:
        for s in servers:
            s.kill()
            s.wait()


def test_canary_notices_flushed_chains(netns):
    dp = dataplane(netns)
    dp.sync(*maps((WEB, [REMOTE_EP])), None)
    assert dp.check_canary() is True
    sh(netns, "iptables", "-t", "nat", "-F", "KUBE-SERVICES")
    assert dp.check_canary() is True  # flushed but present: the next sync rewrites it
    sh(netns, "iptables", "-t", "nat", "-F")
    sh(netns, "iptables", "-t", "nat", "-X", "KUBE-SERVICES")
    assert dp.check_canary() is False
    dp.sync(*maps((WEB, [REMOTE_EP])), None)
    assert dp.check_canary() is True
    assert "-j KUBE-SERVICES" in sh(netns, "iptables-save", "-t", "nat")


def test_cleanup_restores_tables_and_sets_exactly_and_is_repeatable(netns):
    before = state(netns)
    kernel = FakeIpvsKernel()
    dp = dataplane(netns, kernel)
    dp.sync(*maps((WEB, [LOCAL_EP, REMOTE_EP]), (DNS, [REMOTE_EP])), None)
    assert state(netns) != before

    # cleanup from a fresh process, as `kpyops proxy --cleanup` does
    fresh = dataplane(netns, kernel)
    fresh.cleanup()
    assert state(netns) == before
    assert "kpb-foreign" in sh(netns, "ipset", "list", "-n")
    assert "kpb-ipvs0" not in sh(netns, "ip", "-o", "link")
    assert IpvsClient(kernel).list_virtual_servers() == []
    fresh.cleanup()
    assert state(netns) == before


def test_exclude_cidrs_keep_foreign_virtual_servers_through_sync_and_cleanup(netns):
    from kpyops.proxy.ipvs.netlink import VirtualServer

    kernel = FakeIpvsKernel()
    keep = VirtualServer("172.30.0.5", "TCP", 443)
    IpvsClient(kernel).add_virtual_server(keep)
    dp = dataplane(netns, kernel, exclude_cidrs=("172.30.0.0/16",))
    dp.sync(*maps((WEB, [REMOTE_EP])), None)
    dp.cleanup()
    assert IpvsClient(kernel).list_virtual_servers() == [keep]


def test_ipv6_dataplane_uses_its_own_sets_and_ip6tables(netns):
    sh(netns, "ip", "addr", "add", "fd00:77::2/64", "dev", "kpb-eth0", "nodad")
    config = ProxyConfig(
        mode="ipvs", hostname="node-a", cluster_cidrs=("10.244.0.0/16", "fd00:10:244::/56")
    )
    device = IpvsDevice(name="kpb-ipvs0", netns=netns, kind="bridge")
    kernel = FakeIpvsKernel()
    v4 = IpvsDataplane(config, 4, ipvs=IpvsClient(kernel), netns=netns, device=device)
    v6 = IpvsDataplane(config, 6, ipvs=IpvsClient(kernel), netns=netns, device=device)
    both = ServicePort(
        name=ServicePortName("default", "web", "", "TCP"),
        cluster_ips=("10.96.0.10", "fd00:10:96::a"),
        port=80,
        node_port=30080,
    )
    eps = (Endpoint("10.244.1.2", 8080), Endpoint("fd00:10:244::2", 8080))
    v4.sync({both.name: both}, {both.name: eps}, None)
    v6.sync({both.name: both}, {both.name: eps}, None)
    assert ipset_members(netns, "KUBE-CLUSTER-IP") == {"10.96.0.10,tcp:80"}
    assert ipset_members(netns, "KUBE-6-CLUSTER-IP") == {"fd00:10:96::a,tcp:80"}
    nat6 = sh(netns, "ip6tables-save", "-t", "nat")
    assert re.search(
        r"! -s fd00:10:244::/56 .*--match-set KUBE-6-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ", nat6
    )
    addrs = sh(netns, "ip", "-o", "addr", "show", "dev", "kpb-ipvs0")
    assert "10.96.0.10/32" in addrs and "fd00:10:96::a/128" in addrs
    keys = {v.key for v in IpvsClient(kernel).list_virtual_servers()}
    assert ("fd00:77::2", "TCP", 30080) in keys and ("192.168.77.2", "TCP", 30080) in keys
    # a v4 re-sync leaves the v6 addresses and servers alone
    v4.sync({both.name: both}, {both.name: eps}, None)
    assert "fd00:10:96::a/128" in sh(netns, "ip", "-o", "addr", "show", "dev", "kpb-ipvs0")
    assert ("fd00:10:96::a", "TCP", 80) in {
        v.key for v in IpvsClient(kernel).list_virtual_servers()
    }
    v6.cleanup()
    v4.cleanup()
    assert "KUBE-" not in sh(netns, "ipset", "list", "-n")
    assert "KUBE-" not in sh(netns, "ip6tables-save")


def test_cleanup_on_a_kernel_without_ipvs_is_harmless(netns):
    """`kpyops proxy --cleanup` builds a plain IpvsDataplane; with no IPVS it must not fail."""
    before = state(netns)
    config = ProxyConfig(mode="ipvs", hostname="node-a")
    IpvsDataplane(config, 4, netns=netns).cleanup()  # the real kernel transport
    assert state(netns) == before


def test_partial_syncs_leave_what_a_full_sync_would_leave(netns):
    dp = dataplane(netns)
    lb = svc("lb", "10.96.0.20", node_port=30081, load_balancer_ips=("198.51.100.7",),
             load_balancer_source_ranges=("192.168.77.0/24",), external_policy_local=True,
             health_check_node_port=32001)  # fmt: skip
    ext = svc("ext", "10.96.0.30", external_ips=("203.0.113.9",), session_affinity_client_ip=True)
    sctp = svc("sig", "10.96.0.40", port=9, protocol="SCTP", node_port=30009)
    pairs = {WEB.name: (WEB, [LOCAL_EP])}
    dp.sync(*maps(*pairs.values()), None)
    for name, value in (
        (lb.name, (lb, [LOCAL_EP, REMOTE_EP])),  # shares its endpoint's loop-back member
        (ext.name, (ext, [REMOTE_EP])),
        (sctp.name, (sctp, [])),
        (DNS.name, (DNS, [])),
        (WEB.name, None),
        (lb.name, (lb, [REMOTE_EP])),
        (DNS.name, None),
    ):
        if value is None:
            del pairs[name]
        else:
            pairs[name] = value
        result = dp.sync(*maps(*pairs.values()), {name})
        assert not result.full
    addresses = ("ip", "-o", "-4", "addr", "show", "dev", "kpb-ipvs0")
    partial = state(netns), sh(netns, *addresses)
    assert ipset_members(netns, "KUBE-LOOP-BACK") == set()  # WEB gone, LB's endpoint remote
    assert ipset_members(netns, "KUBE-LOAD-BALANCER-SOURCE-CIDR") == {
        "198.51.100.7,tcp:80,192.168.77.0/24"
    }

    full = dp.sync(*maps(*pairs.values()), None)
    assert full.details["ipset_added"] == full.details["ipset_deleted"] == 0
    assert full.details["addresses_bound"] == full.details["addresses_unbound"] == 0
    assert (state(netns), sh(netns, *addresses)) == partial


def test_binding_a_bound_address_or_unbinding_an_absent_one_is_harmless(netns):
    device = IpvsDevice(name="kpb-ipvs0", netns=netns, kind="bridge")
    device.ensure()
    assert device.bind(["10.96.5.1", "10.96.5.2"]) == 2
    assert device.bind(["10.96.5.2"]) == 0
    assert device.unbind(["10.96.5.1", "10.96.5.9"]) == 1
    assert device.addresses() == {"10.96.5.2"}
