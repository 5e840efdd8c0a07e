"""An in-memory IPVS "kernel" that speaks the generic netlink wire format.

Each request is encoded to bytes, decoded again the way the kernel would read it, applied
to an in-memory table with the kernel's error codes (EEXIST, ESRCH, ENOENT), and the
replies are produced as a kernel byte stream (messages, then NLMSG_DONE or an ack/error)
that pyroute2's own ``Marshal`` parses. Used by unit tests and benchmarks: our test
kernels have no IPVS.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass, field

from pyroute2.netlink import NLM_F_DUMP, NLMSG_DONE, NLMSG_ERROR
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic import ipvs as genl
from pyroute2.netlink.marshal import Marshal

from kpyops.proxy.ipvs.netlink import FLAG_HASHED, SCHEDULERS, decode_timeout

FAKE_FAMILY_ID = 0x25  # any generic netlink family id; the kernel assigns one at load


@dataclass
class _Service:
    attrs: dict  # IPVS_SVC_ATTR_* -> value, as the kernel would store and report them
    dests: dict[tuple, dict] = field(default_factory=dict)


def _service_key(svc) -> tuple:
    return (
        svc.get_attr("IPVS_SVC_ATTR_AF"),
        svc.get_attr("IPVS_SVC_ATTR_PROTOCOL"),
        svc.get_attr("IPVS_SVC_ATTR_ADDR"),
        svc.get_attr("IPVS_SVC_ATTR_PORT"),
        svc.get_attr("IPVS_SVC_ATTR_FWMARK") or 0,
    )


def _dest_key(dest) -> tuple:
    return (dest.get_attr("IPVS_DEST_ATTR_ADDR"), dest.get_attr("IPVS_DEST_ATTR_PORT"))


class FakeIpvsKernel:
    """A transport for ``IpvsClient`` backed by an in-memory IPVS table.

    ``requests`` keeps every request as the kernel decoded it (for assertions);
    ``fail`` maps an IPVS command number to an errno to return once.
    """

    def __init__(self) -> None:
        self.services: dict[tuple, _Service] = {}
        self.timeouts = {"tcp": 900, "tcp_fin": 120, "udp": 300}  # the kernel's defaults
        self.requests: list[genl.ipvsmsg] = []
        self.fail: dict[int, int] = {}
        self._seq = 0
        self._marshal = Marshal()
        self._marshal.msg_map[FAKE_FAMILY_ID] = genl.ipvsmsg

    # --- transport interface -------------------------------------------------------------
    def request(self, msg: genl.ipvsmsg, flags: int) -> list[genl.ipvsmsg]:
        self._seq += 1
        msg["header"]["type"] = FAKE_FAMILY_ID
        msg["header"]["flags"] = flags
        msg["header"]["sequence_number"] = self._seq
        msg.encode()
        wire = bytes(msg.data[: msg["header"]["length"]])
        seen = genl.ipvsmsg(wire)
        seen.decode()
        self.requests.append(seen)
        try:
            if seen["cmd"] in self.fail:
                raise _KernelError(self.fail.pop(seen["cmd"]))
            replies = self._apply(seen)
            reply_bytes = b"".join(replies)
            if flags & NLM_F_DUMP:
                reply_bytes += self._header(NLMSG_DONE, 4) + struct.pack("i", 0)
            else:
                reply_bytes += self._error(0, wire)
        except _KernelError as e:
            reply_bytes = self._error(-e.code, wire)
        out = []
        for m in self._marshal.parse(reply_bytes):
            if m["header"].get("error") is not None:
                raise m["header"]["error"]
            if m["header"]["type"] == FAKE_FAMILY_ID:
                out.append(m)
        return out

    def close(self) -> None:
        pass

    # --- test helpers --------------------------------------------------------------------
    def set_connections(self, service_addr, port, dest_addr, dest_port, active, inactive):
        """Pretend a real server has open connections (for graceful-termination tests)."""
        for svc in self.services.values():
            a = svc.attrs
            if a["IPVS_SVC_ATTR_ADDR"] == service_addr and a["IPVS_SVC_ATTR_PORT"] == port:
                d = svc.dests[(dest_addr, dest_port)]
                d["IPVS_DEST_ATTR_ACTIVE_CONNS"] = active
                d["IPVS_DEST_ATTR_INACT_CONNS"] = inactive
                return
        raise KeyError((service_addr, port))

    def commands(self) -> list[int]:
        return [m["cmd"] for m in self.requests]

    # --- the kernel's side -----------------------------------------------------------------
    def _apply(self, m: genl.ipvsmsg) -> list[bytes]:
        cmd = m["cmd"]
        svc = m.get_attr("IPVS_CMD_ATTR_SERVICE")
        dest = m.get_attr("IPVS_CMD_ATTR_DEST")
        if cmd == genl.IPVS_CMD_SET_CONFIG:
            for name, attr in (("tcp", "TCP"), ("tcp_fin", "TCP_FIN"), ("udp", "UDP")):
                value = m.get_attr(f"IPVS_CMD_ATTR_TIMEOUT_{attr}")
                if value is not None and decode_timeout(value):
                    self.timeouts[name] = decode_timeout(value)
            return []
        if cmd == genl.IPVS_CMD_FLUSH:
            self.services.clear()
            return []
        if cmd == genl.IPVS_CMD_GET_SERVICE:
            return [self._service_reply(s) for _, s in sorted(self.services.items())]
        key = _service_key(svc)
        current = self.services.get(key)
        if cmd == genl.IPVS_CMD_NEW_SERVICE:
            if current is not None:
                raise _KernelError(errno.EEXIST)
            attrs = dict(svc["attrs"])
            if attrs.get("IPVS_SVC_ATTR_SCHED_NAME") not in SCHEDULERS:
                raise _KernelError(errno.ENOENT)  # scheduler module not found
            attrs["IPVS_SVC_ATTR_FLAGS"] = {
                "flags": attrs["IPVS_SVC_ATTR_FLAGS"]["flags"] | FLAG_HASHED,
                "mask": 0xFFFFFFFF,
            }
            self.services[key] = _Service(attrs)
            return []
        if current is None:
            raise _KernelError(errno.ESRCH)
        if cmd == genl.IPVS_CMD_SET_SERVICE:
            attrs = dict(svc["attrs"])
            attrs["IPVS_SVC_ATTR_FLAGS"] = {
                "flags": attrs["IPVS_SVC_ATTR_FLAGS"]["flags"] | FLAG_HASHED,
                "mask": 0xFFFFFFFF,
            }
            current.attrs = attrs
            return []
        if cmd == genl.IPVS_CMD_DEL_SERVICE:
            del self.services[key]
            return []
        if cmd == genl.IPVS_CMD_GET_DEST:
            return [self._dest_reply(d) for _, d in sorted(current.dests.items())]
        dkey = _dest_key(dest)
        if cmd == genl.IPVS_CMD_NEW_DEST:
            if dkey in current.dests:
                raise _KernelError(errno.EEXIST)
            attrs = dict(dest["attrs"])
            attrs.setdefault("IPVS_DEST_ATTR_ACTIVE_CONNS", 0)
            attrs.setdefault("IPVS_DEST_ATTR_INACT_CONNS", 0)
            current.dests[dkey] = attrs
            return []
        if dkey not in current.dests:
            raise _KernelError(errno.ENOENT)
        if cmd == genl.IPVS_CMD_SET_DEST:
            kept = {k: v for k, v in current.dests[dkey].items() if k.endswith("_CONNS")}
            current.dests[dkey] = {**dict(dest["attrs"]), **kept}
            return []
        if cmd == genl.IPVS_CMD_DEL_DEST:
            del current.dests[dkey]
            return []
        raise _KernelError(errno.EOPNOTSUPP)

    def _header(self, mtype: int, payload_len: int, flags: int = 0) -> bytes:
        return struct.pack("IHHII", 16 + payload_len, mtype, flags, self._seq, 0)

    def _error(self, code: int, request: bytes) -> bytes:
        payload = struct.pack("i", code) + request
        return self._header(NLMSG_ERROR, len(payload)) + payload

    def _reply(self, attrs: list) -> bytes:
        r = genl.ipvsmsg()
        r["cmd"] = genl.IPVS_CMD_NEW_SERVICE
        r["version"] = genl.GENL_VERSION
        r["attrs"] = attrs
        r["header"]["type"] = FAKE_FAMILY_ID
        r["header"]["flags"] = 2  # NLM_F_MULTI
        r["header"]["sequence_number"] = self._seq
        r.encode()
        return bytes(r.data[: r["header"]["length"]])

    def _service_reply(self, s: _Service) -> bytes:
        return self._reply([("IPVS_CMD_ATTR_SERVICE", {"attrs": list(s.attrs.items())})])

    def _dest_reply(self, d: dict) -> bytes:
        return self._reply([("IPVS_CMD_ATTR_DEST", {"attrs": list(d.items())})])


class _KernelError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


__all__ = ["FAKE_FAMILY_ID", "FakeIpvsKernel", "NetlinkError"]
