"""IpvsDataplane's IPVS reconciliation against the byte-level fake kernel.

The ipset/iptables tools and the interface are replaced by recorders here; they are tested
for real (in a network namespace) in tests/integration/proxy_ipvs.
"""

import errno

import pytest
from ipvs_fakes import FakeDevice
from ipvs_kernel import FakeIpvsKernel
from pyroute2.netlink.generic import ipvs as genl

from kpyops.proxy.config import IpvsConfig, ProxyConfig
from kpyops.proxy.dataplane import Dataplane, DataplaneError
from kpyops.proxy.ipvs.capability import check_ipvs_support
from kpyops.proxy.ipvs.dataplane import IpvsDataplane, apply_sysctls
from kpyops.proxy.ipvs.netlink import IpvsClient, RealServer, VirtualServer
from kpyops.proxy.model import Endpoint, ServicePort, ServicePortName

NODE = "192.168.50.2"
WRITES = {
    genl.IPVS_CMD_NEW_SERVICE,
    genl.IPVS_CMD_SET_SERVICE,
    genl.IPVS_CMD_DEL_SERVICE,
    genl.IPVS_CMD_NEW_DEST,
    genl.IPVS_CMD_SET_DEST,
    genl.IPVS_CMD_DEL_DEST,
}


class RecordingRunner:
    """Stands in for ipset/iptables: remembers the batches, reports empty kernel state."""

    def __init__(self):
        self.calls = []
        self.stdin = []
        self.ipset_save = ""  # what `ipset save` prints

    def run(self, args, stdin=None, check=True):
        self.calls.append(tuple(args))
        if stdin is not None:
            self.stdin.append((args[0], stdin))
        return self.ipset_save if tuple(args) == ("ipset", "save") else ""

    def ok(self, args):
        self.calls.append(tuple(args))
        return False


def make(kernel=None, verify=1000, **ipvs):
    kernel = kernel or FakeIpvsKernel()
    config = ProxyConfig(mode="ipvs", hostname="node-a", ipvs=IpvsConfig(**ipvs))
    dp = IpvsDataplane(
        config,
        4,
        ipvs=IpvsClient(kernel),
        device=FakeDevice(),
        node_ips=lambda: [NODE, "127.0.0.1"],
        verify_per_full_sync=verify,
    )
    dp.runner = RecordingRunner()
    dp.ipsets.runner = dp.runner
    dp.rules.runner = dp.runner
    return dp, kernel


def svc(name="web", ip="10.96.0.10", **kw):
    proto = kw.setdefault("protocol", "TCP")
    kw.setdefault("port", 80)
    return ServicePort(name=ServicePortName("default", name, "", proto), cluster_ips=(ip,), **kw)


def maps(*pairs):
    return {s.name: s for s, _ in pairs}, {s.name: tuple(e) for s, e in pairs}


def real(kernel, addr, port):
    client = IpvsClient(kernel)
    vs = next(v for v in client.list_virtual_servers() if v.key[0] == addr and v.port == port)
    return {(r.address, r.weight) for r in client.list_real_servers(vs)}


EP1, EP2 = Endpoint("10.244.1.2", 8080), Endpoint("10.244.2.2", 8080)


def test_is_a_dataplane():
    dp, _ = make()
    assert isinstance(dp, Dataplane)


def test_first_sync_programs_servers_and_a_second_sync_writes_nothing():
    dp, kernel = make(scheduler="wrr")
    s = svc(node_port=30080)
    result = dp.sync(*maps((s, [EP1, EP2])), None)
    vss = {v.key: v for v in IpvsClient(kernel).list_virtual_servers()}
    assert set(vss) == {("10.96.0.10", "TCP", 80), (NODE, "TCP", 30080)}
    assert vss[("10.96.0.10", "TCP", 80)].scheduler == "wrr"
    assert real(kernel, "10.96.0.10", 80) == {("10.244.1.2", 1), ("10.244.2.2", 1)}
    assert result.services_written == 1 and result.details["vs_added"] == 2
    assert dp.device.addrs == {"10.96.0.10"}

    before = len(kernel.requests)
    again = dp.sync(*maps((s, [EP1, EP2])), {s.name})
    writes = [m["cmd"] for m in kernel.requests[before:] if m["cmd"] in WRITES]
    assert writes == []
    assert again.details["vs_added"] == again.details["rs_added"] == 0


def test_one_ipset_restore_and_one_iptables_restore_per_sync():
    dp, _ = make()
    dp.sync(*maps((svc(), [EP1])), None)
    tools = [tool for tool, _ in dp.runner.stdin]
    assert tools == ["ipset", "iptables-restore"]
    ipset_batch = dp.runner.stdin[0][1]
    assert "add KUBE-CLUSTER-IP 10.96.0.10,tcp:80" in ipset_batch
    assert "add KUBE-IPVS-IPS 10.96.0.10" in ipset_batch


def test_removed_tcp_endpoint_is_drained_then_deleted_when_idle():
    dp, kernel = make()
    s = svc()
    dp.sync(*maps((s, [EP1, EP2])), None)
    kernel.set_connections("10.96.0.10", 80, "10.244.2.2", 8080, active=3, inactive=0)

    dp.sync(*maps((s, [EP1])), {s.name})
    assert real(kernel, "10.96.0.10", 80) == {("10.244.1.2", 1), ("10.244.2.2", 0)}

    dp.sync(*maps((s, [EP1])), {s.name})  # still busy: stays at weight 0
    assert ("10.244.2.2", 0) in real(kernel, "10.96.0.10", 80)

    kernel.set_connections("10.96.0.10", 80, "10.244.2.2", 8080, active=0, inactive=0)
    result = dp.sync(*maps((s, [EP1])), {s.name})
    assert real(kernel, "10.96.0.10", 80) == {("10.244.1.2", 1)}
    assert result.details["rs_deleted"] == 1


def test_draining_endpoint_that_comes_back_gets_its_weight_again():
    dp, kernel = make()
    s = svc()
    dp.sync(*maps((s, [EP1, EP2])), None)
    kernel.set_connections("10.96.0.10", 80, "10.244.2.2", 8080, active=1, inactive=0)
    dp.sync(*maps((s, [EP1])), {s.name})
    dp.sync(*maps((s, [EP1, EP2])), {s.name})
    assert real(kernel, "10.96.0.10", 80) == {("10.244.1.2", 1), ("10.244.2.2", 1)}


def test_removed_udp_endpoint_is_deleted_at_once():
    dp, kernel = make()
    s = svc("dns", protocol="UDP", port=53)
    dp.sync(*maps((s, [Endpoint("10.244.1.2", 53), Endpoint("10.244.2.2", 53)])), None)
    kernel.set_connections("10.96.0.10", 53, "10.244.2.2", 53, active=0, inactive=4)
    dp.sync(*maps((s, [Endpoint("10.244.1.2", 53)])), {s.name})
    assert real(kernel, "10.96.0.10", 53) == {("10.244.1.2", 1)}


def test_affinity_change_updates_the_virtual_server_in_place():
    dp, kernel = make()
    dp.sync(*maps((svc(), [EP1])), None)
    dp.sync(*maps((svc(session_affinity_client_ip=True, sticky_max_age_seconds=90), [EP1])), None)
    assert genl.IPVS_CMD_SET_SERVICE in kernel.commands()
    (vs,) = IpvsClient(kernel).list_virtual_servers()
    assert (vs.persistent, vs.timeout) == (True, 90)
    dp.sync(*maps((svc(), [EP1])), None)
    (vs,) = IpvsClient(kernel).list_virtual_servers()
    assert (vs.persistent, vs.timeout) == (False, 0)


def test_stale_virtual_servers_are_deleted_except_inside_exclude_cidrs():
    kernel = FakeIpvsKernel()
    other = IpvsClient(kernel)
    excluded = VirtualServer("172.30.0.5", "TCP", 443)
    stray = VirtualServer("10.96.99.99", "TCP", 80)
    other.add_virtual_server(excluded)
    other.add_virtual_server(stray)
    dp, _ = make(kernel, exclude_cidrs=("172.30.0.0/16",))
    a, b = svc("a", "10.96.0.1"), svc("b", "10.96.0.2")
    dp.sync(*maps((a, [EP1]), (b, [EP2])), None)
    keys = {v.key for v in other.list_virtual_servers()}
    assert keys == {excluded.key, ("10.96.0.1", "TCP", 80), ("10.96.0.2", "TCP", 80)}

    result = dp.sync(*maps((a, [EP1])), None)
    keys = {v.key for v in other.list_virtual_servers()}
    assert keys == {excluded.key, ("10.96.0.1", "TCP", 80)}
    assert result.details["vs_deleted"] == 1
    assert dp.device.addrs == {"10.96.0.1"}


def test_other_family_virtual_servers_are_left_alone():
    kernel = FakeIpvsKernel()
    v6 = VirtualServer("fd00::10", "TCP", 80)
    IpvsClient(kernel).add_virtual_server(v6)
    dp, _ = make(kernel)
    dp.sync(*maps((svc(), [EP1])), None)
    assert v6 in IpvsClient(kernel).list_virtual_servers()


def test_netlink_failure_becomes_a_dataplane_error():
    dp, kernel = make()
    kernel.fail[genl.IPVS_CMD_NEW_SERVICE] = errno.ENOMEM
    with pytest.raises(DataplaneError, match="IPVS"):
        dp.sync(*maps((svc(), [EP1])), None)


def test_cleanup_removes_only_our_virtual_servers():
    kernel = FakeIpvsKernel()
    foreign = VirtualServer("10.1.1.1", "TCP", 8080)
    dp, _ = make(kernel)
    dp.sync(*maps((svc(node_port=30080), [EP1])), None)
    IpvsClient(kernel).add_virtual_server(foreign)  # someone else's, made after our sync
    # a fresh process (no memory of what it made) finds ours through kube-ipvs0's
    # addresses and the NodePort sets
    fresh, _ = make(kernel)
    fresh.device = dp.device
    fresh.runner.ipset_save = (
        "create KUBE-NODE-PORT-TCP bitmap:port range 0-65535\nadd KUBE-NODE-PORT-TCP 30080\n"
    )
    fresh.cleanup()
    assert IpvsClient(kernel).list_virtual_servers() == [foreign]
    assert not dp.device.present
    fresh.cleanup()  # twice is fine


def test_canary_is_true_before_the_first_sync():
    dp, _ = make()
    assert dp.check_canary() is True


def test_capability_check_names_a_missing_scheduler():
    client = IpvsClient(FakeIpvsKernel())
    support = check_ipvs_support("nosuch", client=client)
    assert support.ipvs_netlink is True
    assert support.scheduler_ok is False
    assert any("ip_vs_nosuch" in p for p in support.problems)
    assert check_ipvs_support("rr", client=client).scheduler_ok is True
    assert IpvsClient(client.transport).list_virtual_servers() == []  # probe removed


def test_sysctls_written_only_when_different(tmp_path):
    for key in ("net/ipv4/vs/conntrack", "net/ipv4/vs/expire_nodest_conn",
                "net/ipv4/vs/expire_quiescent_template", "net/ipv4/ip_forward",
                "net/ipv4/conf/all/arp_ignore", "net/ipv4/conf/all/arp_announce"):  # fmt: skip
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_text("0\n")
    (tmp_path / "net/ipv4/ip_forward").write_text("1\n")
    written = apply_sysctls(strict_arp=True, root=tmp_path)
    assert "net/ipv4/ip_forward" not in written
    assert (tmp_path / "net/ipv4/vs/conntrack").read_text().strip() == "1"
    assert (tmp_path / "net/ipv4/conf/all/arp_announce").read_text().strip() == "2"
    assert apply_sysctls(strict_arp=True, root=tmp_path) == {}


def test_sysctls_explain_a_missing_ip_vs_module(tmp_path):
    with pytest.raises(DataplaneError, match="ip_vs"):
        apply_sysctls(strict_arp=False, root=tmp_path)


def test_real_server_identity_ignores_counters():
    assert RealServer("10.0.0.1", 80, 1, active_conns=5) == RealServer("10.0.0.1", 80, 1)


def dumps(kernel, since):
    cmds = [m["cmd"] for m in kernel.requests[since:]]
    return cmds.count(genl.IPVS_CMD_GET_SERVICE), cmds.count(genl.IPVS_CMD_GET_DEST)


def test_partial_sync_trusts_what_it_applied_and_reads_nothing_back():
    dp, kernel = make()
    a, b = svc("a", "10.96.0.1"), svc("b", "10.96.0.2")
    dp.sync(*maps((a, [EP1]), (b, [EP1])), None)
    n = len(kernel.requests)
    dp.sync(*maps((a, [EP1, EP2]), (b, [EP1])), {a.name})
    assert dumps(kernel, n) == (0, 1)  # only the changed service's real servers
    assert real(kernel, "10.96.0.1", 80) == {("10.244.1.2", 1), ("10.244.2.2", 1)}
    n = len(kernel.requests)
    dp.sync(*maps((b, [EP1])), {a.name})  # a deleted: found through the cache
    assert dumps(kernel, n) == (0, 0)
    assert {v.key for v in IpvsClient(kernel).list_virtual_servers()} == {("10.96.0.2", "TCP", 80)}


def test_full_sync_repairs_real_servers_removed_behind_our_back():
    dp, kernel = make()
    s = svc()
    dp.sync(*maps((s, [EP1, EP2])), None)
    client = IpvsClient(kernel)
    (vs,) = client.list_virtual_servers()
    client.delete_real_server(vs, RealServer("10.244.2.2", 8080))
    dp.sync(*maps((s, [EP1, EP2])), {s.name})  # nothing changed for the loop: not noticed
    assert real(kernel, "10.96.0.10", 80) == {("10.244.1.2", 1)}
    dp.sync(*maps((s, [EP1, EP2])), None)
    assert real(kernel, "10.96.0.10", 80) == {("10.244.1.2", 1), ("10.244.2.2", 1)}


def test_full_syncs_verify_a_bounded_rotating_slice():
    dp, kernel = make(verify=2)
    services = [svc(f"s{i}", f"10.96.0.{i + 1}") for i in range(5)]
    dp.sync(*maps(*[(x, [EP1]) for x in services]), None)
    client = IpvsClient(kernel)
    for vs in client.list_virtual_servers():  # drift everywhere
        client.delete_real_server(vs, RealServer("10.244.1.2", 8080))
    for _ in range(3):
        n = len(kernel.requests)
        dp.sync(*maps(*[(x, [EP1]) for x in services]), None)
        assert dumps(kernel, n) == (1, 2)
    for i in range(5):
        assert real(kernel, f"10.96.0.{i + 1}", 80) == {("10.244.1.2", 1)}


def test_after_a_failure_everything_is_read_back():
    dp, kernel = make()
    a, b = svc("a", "10.96.0.1"), svc("b", "10.96.0.2")
    dp.sync(*maps((a, [EP1]), (b, [EP1])), None)
    kernel.fail[genl.IPVS_CMD_NEW_DEST] = errno.ENOMEM
    with pytest.raises(DataplaneError):
        dp.sync(*maps((a, [EP1, EP2]), (b, [EP1])), {a.name})
    n = len(kernel.requests)
    dp.sync(*maps((a, [EP1, EP2]), (b, [EP1])), {a.name})
    assert dumps(kernel, n) == (1, 2)
    assert real(kernel, "10.96.0.1", 80) == {("10.244.1.2", 1), ("10.244.2.2", 1)}


def test_configured_timeouts_are_set_once_at_the_first_sync():
    dp, kernel = make(tcp_timeout=3600.0, udp_timeout=20.0)
    dp.sync(*maps((svc(), [EP1])), None)
    assert kernel.timeouts == {"tcp": 3600, "tcp_fin": 120, "udp": 20}
    dp.sync(*maps((svc(), [EP1])), None)
    assert kernel.commands().count(genl.IPVS_CMD_SET_CONFIG) == 1


def test_no_timeouts_configured_sends_no_config_request():
    dp, kernel = make()
    dp.sync(*maps((svc(), [EP1])), None)
    assert genl.IPVS_CMD_SET_CONFIG not in kernel.commands()
