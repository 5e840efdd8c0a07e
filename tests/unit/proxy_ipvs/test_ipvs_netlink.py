"""IPVS netlink messages: what goes on the wire, and what comes back from a (fake) kernel."""

import errno
import socket
import struct

import pytest
from ipvs_kernel import FakeIpvsKernel
from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic import ipvs as genl

from kpyops.proxy.ipvs.netlink import (
    FLAG_HASHED,
    FLAG_PERSISTENT,
    FWD_MASQ,
    IpvsClient,
    RealServer,
    VirtualServer,
    dest_message,
    service_message,
)


def wire(msg) -> genl.ipvsmsg:
    """Encode a request to bytes and decode it again, as the kernel reads it."""
    msg["header"]["type"] = 0x20
    msg.encode()
    seen = genl.ipvsmsg(bytes(msg.data[: msg["header"]["length"]]))
    seen.decode()
    return seen


def svc_attrs(msg):
    return msg.get_attr("IPVS_CMD_ATTR_SERVICE")


def test_new_service_message_carries_address_port_protocol_scheduler():
    vs = VirtualServer("10.96.0.10", "UDP", 53, "wrr")
    m = wire(service_message(genl.IPVS_CMD_NEW_SERVICE, vs))
    assert m["cmd"] == genl.IPVS_CMD_NEW_SERVICE
    assert m["version"] == genl.GENL_VERSION
    s = svc_attrs(m)
    assert s.get_attr("IPVS_SVC_ATTR_AF") == socket.AF_INET
    assert s.get_attr("IPVS_SVC_ATTR_PROTOCOL") == socket.IPPROTO_UDP
    assert s.get_attr("IPVS_SVC_ATTR_ADDR") == "10.96.0.10"
    assert s.get_attr("IPVS_SVC_ATTR_PORT") == 53
    assert s.get_attr("IPVS_SVC_ATTR_SCHED_NAME") == "wrr"
    assert s.get_attr("IPVS_SVC_ATTR_NETMASK") == "255.255.255.255"
    assert s.get_attr("IPVS_SVC_ATTR_FLAGS") == {"flags": 0, "mask": 0xFFFFFFFF}
    assert s.get_attr("IPVS_SVC_ATTR_TIMEOUT") == 0


def test_port_is_big_endian_on_the_wire():
    vs = VirtualServer("10.96.0.1", "TCP", 443)
    msg = service_message(genl.IPVS_CMD_NEW_SERVICE, vs)
    msg.encode()
    raw = bytes(msg.data)
    assert struct.pack(">H", 443) in raw
    assert socket.inet_aton("10.96.0.1") in raw


@pytest.mark.parametrize("scheduler", ["rr", "wrr", "lc", "dh", "sh", "sed", "nq"])
def test_every_supported_scheduler_is_sent_by_name(scheduler):
    m = wire(
        service_message(genl.IPVS_CMD_NEW_SERVICE, VirtualServer("10.0.0.1", "TCP", 80, scheduler))
    )
    assert svc_attrs(m).get_attr("IPVS_SVC_ATTR_SCHED_NAME") == scheduler


def test_client_ip_affinity_sets_persistent_flag_and_timeout():
    vs = VirtualServer("10.96.0.1", "TCP", 80, "rr", persistent=True, timeout=10800)
    s = svc_attrs(wire(service_message(genl.IPVS_CMD_NEW_SERVICE, vs)))
    assert s.get_attr("IPVS_SVC_ATTR_FLAGS")["flags"] & FLAG_PERSISTENT
    assert s.get_attr("IPVS_SVC_ATTR_TIMEOUT") == 10800


def test_ipv6_service_family_and_prefix_length_netmask():
    vs = VirtualServer("fd00:10:96::a", "TCP", 443)
    s = svc_attrs(wire(service_message(genl.IPVS_CMD_NEW_SERVICE, vs)))
    assert s.get_attr("IPVS_SVC_ATTR_AF") == socket.AF_INET6
    assert s.get_attr("IPVS_SVC_ATTR_ADDR") == "fd00:10:96::a"
    # the kernel reads the IPv6 netmask as a host-order prefix length (must be 128)
    raw = socket.inet_aton(s.get_attr("IPVS_SVC_ATTR_NETMASK"))
    assert struct.unpack("=I", raw)[0] == 128


def test_delete_service_sends_only_the_key():
    vs = VirtualServer("10.96.0.1", "TCP", 80, "sh", persistent=True, timeout=60)
    s = svc_attrs(wire(service_message(genl.IPVS_CMD_DEL_SERVICE, vs, key_only=True)))
    names = {name for name, _ in s["attrs"]}
    assert names == {
        "IPVS_SVC_ATTR_AF",
        "IPVS_SVC_ATTR_ADDR",
        "IPVS_SVC_ATTR_PORT",
        "IPVS_SVC_ATTR_PROTOCOL",
    }


def test_real_server_message_uses_masquerading_and_weight():
    vs = VirtualServer("10.96.0.1", "TCP", 80)
    m = wire(dest_message(genl.IPVS_CMD_SET_DEST, vs, RealServer("10.244.1.7", 8080, weight=0)))
    assert svc_attrs(m).get_attr("IPVS_SVC_ATTR_PORT") == 80
    d = m.get_attr("IPVS_CMD_ATTR_DEST")
    assert d.get_attr("IPVS_DEST_ATTR_ADDR") == "10.244.1.7"
    assert d.get_attr("IPVS_DEST_ATTR_PORT") == 8080
    assert d.get_attr("IPVS_DEST_ATTR_WEIGHT") == 0
    # pyroute2's default is direct routing (3); kube-proxy uses NAT
    assert d.get_attr("IPVS_DEST_ATTR_FWD_METHOD") == FWD_MASQ
    assert d.get_attr("IPVS_DEST_ATTR_ADDR_FAMILY") == socket.AF_INET


def test_client_request_flags():
    kernel = FakeIpvsKernel()
    client = IpvsClient(kernel)
    vs = VirtualServer("10.96.0.1", "TCP", 80)
    client.add_virtual_server(vs)
    client.list_virtual_servers()
    add, dump = kernel.requests
    assert add["header"]["flags"] & (NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK) == (
        NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK
    )
    assert dump["header"]["flags"] & NLM_F_DUMP == NLM_F_DUMP


def test_dump_decodes_kernel_replies_and_hides_the_hashed_flag():
    kernel = FakeIpvsKernel()
    client = IpvsClient(kernel)
    a = VirtualServer("10.96.0.1", "TCP", 443, "rr", persistent=True, timeout=300)
    b = VirtualServer("fd00::1", "UDP", 53, "sh")
    client.add_virtual_server(a)
    client.add_virtual_server(b)
    # the fake kernel stores flags with HASHED, as the real one reports them
    assert all(
        s.attrs["IPVS_SVC_ATTR_FLAGS"]["flags"] & FLAG_HASHED for s in kernel.services.values()
    )
    assert sorted(client.list_virtual_servers()) == sorted([a, b])


def test_real_server_dump_reports_weights_and_connections():
    kernel = FakeIpvsKernel()
    client = IpvsClient(kernel)
    vs = VirtualServer("10.96.0.1", "TCP", 80)
    client.add_virtual_server(vs)
    client.add_real_server(vs, RealServer("10.244.0.2", 8080))
    client.add_real_server(vs, RealServer("10.244.0.3", 8080, weight=5))
    kernel.set_connections("10.96.0.1", 80, "10.244.0.3", 8080, active=2, inactive=1)
    got = {rs.address: rs for rs in client.list_real_servers(vs)}
    assert got["10.244.0.2"].weight == 1
    assert (got["10.244.0.3"].weight, got["10.244.0.3"].active_conns) == (5, 2)
    assert got["10.244.0.3"].inactive_conns == 1


def test_kernel_errors_surface_as_netlink_errors():
    client = IpvsClient(FakeIpvsKernel())
    vs = VirtualServer("10.96.0.1", "TCP", 80)
    client.add_virtual_server(vs)
    with pytest.raises(NetlinkError) as exists:
        client.add_virtual_server(vs)
    assert exists.value.code == errno.EEXIST
    with pytest.raises(NetlinkError) as missing:
        client.delete_virtual_server(VirtualServer("10.96.0.2", "TCP", 80))
    assert missing.value.code == errno.ESRCH
    with pytest.raises(NetlinkError) as no_dest:
        client.delete_real_server(vs, RealServer("10.244.0.9", 80))
    assert no_dest.value.code == errno.ENOENT


def test_update_changes_scheduler_and_persistence():
    kernel = FakeIpvsKernel()
    client = IpvsClient(kernel)
    client.add_virtual_server(VirtualServer("10.96.0.1", "TCP", 80, "rr"))
    client.update_virtual_server(VirtualServer("10.96.0.1", "TCP", 80, "lc", True, 60))
    assert kernel.commands()[-1] == genl.IPVS_CMD_SET_SERVICE
    (got,) = client.list_virtual_servers()
    assert (got.scheduler, got.persistent, got.timeout) == ("lc", True, 60)


def test_timeouts_message_carries_host_order_u32_seconds():
    from kpyops.proxy.ipvs.netlink import timeouts_message

    m = wire(timeouts_message(900, 0, 60))
    assert m["cmd"] == genl.IPVS_CMD_SET_CONFIG
    raw = bytes.fromhex(m.get_attr("IPVS_CMD_ATTR_TIMEOUT_TCP").replace(":", ""))
    assert struct.unpack("=I", raw) == (900,)
    raw = bytes.fromhex(m.get_attr("IPVS_CMD_ATTR_TIMEOUT_UDP").replace(":", ""))
    assert struct.unpack("=I", raw) == (60,)


def test_zero_timeouts_leave_the_kernel_values():
    kernel = FakeIpvsKernel()
    IpvsClient(kernel).set_timeouts(0, 30, 0)
    assert kernel.timeouts == {"tcp": 900, "tcp_fin": 30, "udp": 300}
