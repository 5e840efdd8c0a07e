"""IPVS virtual and real servers over generic netlink (family "IPVS").

Messages are pyroute2 ``ipvsmsg`` objects, whose NLA definitions encode and decode the
attributes; we fill the attribute lists ourselves instead of going through pyroute2's
``IPVSService``/``IPVSDest`` request processors, which cost ~1.3 ms per message here
(bench/proxy_ipvs: a first sync at 10,000 services sends ~140,000 messages). The service
key attributes are cached per virtual server. A *transport* sends one message and returns
the decoded replies.
``KernelIpvsTransport`` talks to the kernel; ``FakeIpvsKernel`` (tests/doubles/ipvs_kernel.py)
answers the same messages from memory, at the byte level, for tests.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import struct
from dataclasses import dataclass, field
from typing import Protocol

from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST
from pyroute2.netlink.generic import ipvs as genl

from kpyops.proxy.config import IPVS_SCHEDULERS

# include/uapi/linux/ip_vs.h
FLAG_PERSISTENT = 0x0001
FLAG_HASHED = 0x0002  # set by the kernel on every service it reports
FLAG_ONEPACKET = 0x0004
FLAG_SCHED1 = 0x0008
FLAG_SCHED2 = 0x0010
FLAG_SCHED3 = 0x0020
FLAGS_MASK = 0xFFFFFFFF
FWD_MASQ = 0x0000  # IP_VS_CONN_F_MASQ: NAT, what kube-proxy uses
SCHEDULERS = IPVS_SCHEDULERS
PROTOCOLS = {"TCP": socket.IPPROTO_TCP, "UDP": socket.IPPROTO_UDP, "SCTP": socket.IPPROTO_SCTP}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}

REQUEST = NLM_F_REQUEST | NLM_F_ACK
CREATE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
DUMP = NLM_F_REQUEST | NLM_F_DUMP


def _netmask(family: int) -> str:
    """The NETMASK attribute: all ones for IPv4; for IPv6 the prefix length 128.

    The kernel reads the IPv6 value as a host-order integer from a be32 attribute
    (``(__force __u32) u->netmask`` in ip_vs_ctl.c), so 128 goes out in native byte order.
    """
    if family == socket.AF_INET:
        return "255.255.255.255"
    return socket.inet_ntoa(struct.pack("=I", 128))


@dataclass(frozen=True, order=True)
class VirtualServer:
    """One IPVS service: address, protocol and port, and how it balances."""

    address: str
    protocol: str  # TCP, UDP, SCTP
    port: int
    scheduler: str = "rr"
    persistent: bool = False
    timeout: int = 0  # persistence timeout, seconds (sessionAffinity ClientIP)
    flags: int = 0  # extra flags beyond persistence (e.g. FLAG_SCHED1 for mh/sh fallback)

    @property
    def family(self) -> int:
        return (
            socket.AF_INET6 if ipaddress.ip_address(self.address).version == 6 else socket.AF_INET
        )

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.address, self.protocol, self.port)

    def all_flags(self) -> int:
        return self.flags | (FLAG_PERSISTENT if self.persistent else 0)

    def key_attrs(self) -> dict:
        """The IPVS_CMD_ATTR_SERVICE attributes naming this service (cached)."""
        return _key_attrs(self.address, self.protocol, self.port)

    def attrs(self) -> dict:
        """Every IPVS_CMD_ATTR_SERVICE attribute, for creating or changing the service."""
        return {
            "attrs": [
                *self.key_attrs()["attrs"],
                ("IPVS_SVC_ATTR_SCHED_NAME", self.scheduler),
                ("IPVS_SVC_ATTR_FLAGS", {"flags": self.all_flags(), "mask": FLAGS_MASK}),
                ("IPVS_SVC_ATTR_TIMEOUT", self.timeout if self.persistent else 0),
                ("IPVS_SVC_ATTR_NETMASK", _netmask(self.family)),
            ]
        }

    @classmethod
    def from_attrs(cls, svc) -> VirtualServer:
        """Build from a decoded IPVS_CMD_ATTR_SERVICE attribute (a kernel reply)."""
        flags = (svc.get_attr("IPVS_SVC_ATTR_FLAGS") or {"flags": 0})["flags"]
        flags &= ~FLAG_HASHED
        return cls(
            address=str(ipaddress.ip_address(svc.get_attr("IPVS_SVC_ATTR_ADDR"))),
            protocol=PROTOCOL_NAMES.get(svc.get_attr("IPVS_SVC_ATTR_PROTOCOL"), "?"),
            port=svc.get_attr("IPVS_SVC_ATTR_PORT"),
            scheduler=svc.get_attr("IPVS_SVC_ATTR_SCHED_NAME") or "",
            persistent=bool(flags & FLAG_PERSISTENT),
            timeout=svc.get_attr("IPVS_SVC_ATTR_TIMEOUT") or 0,
            flags=flags & ~FLAG_PERSISTENT,
        )


@dataclass(frozen=True, order=True)
class RealServer:
    """One IPVS destination of a virtual server (an endpoint), with its live counters."""

    address: str
    port: int
    weight: int = 1
    active_conns: int = field(default=0, compare=False)
    inactive_conns: int = field(default=0, compare=False)

    @property
    def key(self) -> tuple[str, int]:
        return (self.address, self.port)

    def attrs(self) -> dict:
        """The IPVS_CMD_ATTR_DEST attributes: NAT forwarding, no connection thresholds."""
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        return {
            "attrs": [
                ("IPVS_DEST_ATTR_ADDR_FAMILY", family),
                ("IPVS_DEST_ATTR_ADDR", self.address),
                ("IPVS_DEST_ATTR_PORT", self.port),
                ("IPVS_DEST_ATTR_FWD_METHOD", FWD_MASQ),
                ("IPVS_DEST_ATTR_WEIGHT", self.weight),
                ("IPVS_DEST_ATTR_U_THRESH", 0),
                ("IPVS_DEST_ATTR_L_THRESH", 0),
            ]
        }

    @classmethod
    def from_attrs(cls, dest) -> RealServer:
        return cls(
            address=str(ipaddress.ip_address(dest.get_attr("IPVS_DEST_ATTR_ADDR"))),
            port=dest.get_attr("IPVS_DEST_ATTR_PORT"),
            weight=dest.get_attr("IPVS_DEST_ATTR_WEIGHT") or 0,
            active_conns=dest.get_attr("IPVS_DEST_ATTR_ACTIVE_CONNS") or 0,
            inactive_conns=dest.get_attr("IPVS_DEST_ATTR_INACT_CONNS") or 0,
        )


@functools.lru_cache(maxsize=1 << 16)
def _key_attrs(address: str, protocol: str, port: int) -> dict:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return {
        "attrs": [
            ("IPVS_SVC_ATTR_AF", family),
            ("IPVS_SVC_ATTR_PROTOCOL", PROTOCOLS[protocol]),
            ("IPVS_SVC_ATTR_ADDR", address),
            ("IPVS_SVC_ATTR_PORT", port),
        ]
    }


def service_message(cmd: int, vs: VirtualServer | None, key_only: bool = False) -> genl.ipvsmsg:
    """An IPVS request about one service (or, with ``vs=None``, all of them)."""
    msg = genl.ipvsmsg()
    msg["cmd"] = cmd
    msg["version"] = genl.GENL_VERSION
    msg["attrs"] = []
    if vs is not None:
        msg["attrs"].append(("IPVS_CMD_ATTR_SERVICE", vs.key_attrs() if key_only else vs.attrs()))
    return msg


def dest_message(cmd: int, vs: VirtualServer, rs: RealServer | None) -> genl.ipvsmsg:
    """An IPVS request about one real server of ``vs`` (or, with ``rs=None``, all of them)."""
    msg = genl.ipvsmsg()
    msg["cmd"] = cmd
    msg["version"] = genl.GENL_VERSION
    msg["attrs"] = [("IPVS_CMD_ATTR_SERVICE", vs.key_attrs())]
    if rs is not None:
        msg["attrs"].append(("IPVS_CMD_ATTR_DEST", rs.attrs()))
    return msg


def timeouts_message(tcp: int, tcp_fin: int, udp: int) -> genl.ipvsmsg:
    """IPVS_CMD_SET_CONFIG: connection timeouts in seconds; the kernel leaves 0 unchanged.

    pyroute2 declares these attributes as raw bytes; the kernel reads host-order u32s.
    """
    msg = genl.ipvsmsg()
    msg["cmd"] = genl.IPVS_CMD_SET_CONFIG
    msg["version"] = genl.GENL_VERSION
    msg["attrs"] = [
        ("IPVS_CMD_ATTR_TIMEOUT_TCP", struct.pack("=I", tcp)),
        ("IPVS_CMD_ATTR_TIMEOUT_TCP_FIN", struct.pack("=I", tcp_fin)),
        ("IPVS_CMD_ATTR_TIMEOUT_UDP", struct.pack("=I", udp)),
    ]
    return msg


def decode_timeout(value: str) -> int:
    """A TIMEOUT attribute as pyroute2 decodes it ("84:03:00:00") -> seconds."""
    return struct.unpack("=I", bytes.fromhex(value.replace(":", "")))[0]


class IpvsTransport(Protocol):
    """Sends one IPVS generic-netlink message; returns the decoded reply messages.

    Raises ``pyroute2.NetlinkError`` with the kernel's errno on failure.
    """

    def request(self, msg: genl.ipvsmsg, flags: int) -> list[genl.ipvsmsg]: ...

    def close(self) -> None: ...


class KernelIpvsTransport:
    """The real kernel, through pyroute2's IPVS generic netlink socket."""

    def __init__(self, netns: str | None = None) -> None:
        from pyroute2 import IPVS

        self._sock = IPVS(netns=netns) if netns else IPVS()

    def request(self, msg: genl.ipvsmsg, flags: int) -> list[genl.ipvsmsg]:
        prid = self._sock.asyncore.prid
        return [
            m
            for m in self._sock.nlm_request(msg, msg_type=prid, msg_flags=flags)
            if m.get("cmd") is not None and m["header"]["type"] == prid
        ]

    def close(self) -> None:
        self._sock.close()


class IpvsClient:
    """Virtual and real server operations, one netlink request each."""

    def __init__(self, transport: IpvsTransport) -> None:
        self.transport = transport

    # virtual servers
    def list_virtual_servers(self) -> list[VirtualServer]:
        """Every address-based virtual server (firewall-mark services are skipped)."""
        replies = self.transport.request(service_message(genl.IPVS_CMD_GET_SERVICE, None), DUMP)
        attrs = [m.get_attr("IPVS_CMD_ATTR_SERVICE") for m in replies]
        return [
            VirtualServer.from_attrs(a)
            for a in attrs
            if a is not None
            and a.get_attr("IPVS_SVC_ATTR_ADDR")
            and not a.get_attr("IPVS_SVC_ATTR_FWMARK")
        ]

    def add_virtual_server(self, vs: VirtualServer) -> None:
        self.transport.request(service_message(genl.IPVS_CMD_NEW_SERVICE, vs), CREATE)

    def update_virtual_server(self, vs: VirtualServer) -> None:
        self.transport.request(service_message(genl.IPVS_CMD_SET_SERVICE, vs), REQUEST)

    def delete_virtual_server(self, vs: VirtualServer) -> None:
        self.transport.request(
            service_message(genl.IPVS_CMD_DEL_SERVICE, vs, key_only=True), REQUEST
        )

    def flush(self) -> None:
        self.transport.request(service_message(genl.IPVS_CMD_FLUSH, None), REQUEST)

    # real servers
    def list_real_servers(self, vs: VirtualServer) -> list[RealServer]:
        replies = self.transport.request(dest_message(genl.IPVS_CMD_GET_DEST, vs, None), DUMP)
        return [RealServer.from_attrs(m.get_attr("IPVS_CMD_ATTR_DEST")) for m in replies]

    def add_real_server(self, vs: VirtualServer, rs: RealServer) -> None:
        self.transport.request(dest_message(genl.IPVS_CMD_NEW_DEST, vs, rs), CREATE)

    def update_real_server(self, vs: VirtualServer, rs: RealServer) -> None:
        self.transport.request(dest_message(genl.IPVS_CMD_SET_DEST, vs, rs), REQUEST)

    def delete_real_server(self, vs: VirtualServer, rs: RealServer) -> None:
        self.transport.request(dest_message(genl.IPVS_CMD_DEL_DEST, vs, rs), REQUEST)

    def set_timeouts(self, tcp: int, tcp_fin: int, udp: int) -> None:
        """Set IPVS' connection timeouts (``ipvsadm --set``); 0 keeps the kernel's value."""
        self.transport.request(timeouts_message(tcp, tcp_fin, udp), REQUEST)

    def close(self) -> None:
        self.transport.close()
