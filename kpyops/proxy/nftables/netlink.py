"""Talking to nf_tables over netlink without nft: the canary's rule counts, and batches.

Every ``nft`` run first loads nft's cache (every table, chain and set: 1.4 MB of netlink
messages at 1,000 services, ~14 MB and over a second at 10,000), whatever it is asked.

- :func:`count_rules`: the canary check (every syncPeriod) counts the rules of a few chains,
  one filtered dump (NFT_MSG_GETRULE naming the table and chain) each.
- :func:`send_batch`: a partial sync's transaction (:class:`.wire.Batch`), sent as one
  nfnetlink batch: the kernel applies all of it or none, as with ``nft -f``.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_NEWRULE = 6
NFT_MSG_GETRULE = 7
NFTA_RULE_TABLE = 1
NFTA_RULE_CHAIN = 2
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
SOL_NETLINK = 270
SO_SNDBUFFORCE = 32
NETLINK_CAP_ACK = 10
FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}  # NFPROTO_IPV4 / NFPROTO_IPV6


def _attr(kind: int, text: str) -> bytes:
    data = text.encode() + b"\0"
    return struct.pack("=HH", 4 + len(data), kind) + data + b"\0" * (-len(data) % 4)


def rule_dump_request(family: int, table: str, chain: str, seq: int) -> bytes:
    """NFT_MSG_GETRULE | NLM_F_DUMP for the rules of one chain."""
    body = struct.pack("=BBH", FAMILIES[family], 0, 0)  # nfgenmsg: family, version, res_id
    body += _attr(NFTA_RULE_TABLE, table) + _attr(NFTA_RULE_CHAIN, chain)
    kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE
    return struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body


def count_rules(family: int, table: str, chains: list[str]) -> dict[str, int | None]:
    """How many rules each chain holds; None for a chain (or table) that does not exist."""
    out: dict[str, int | None] = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
        sock.bind((0, 0))
        for seq, chain in enumerate(chains, start=1):
            sock.send(rule_dump_request(family, table, chain, seq))
            out[chain] = _count_replies(sock, seq)
    return out


def send_batch(messages: list[bytes]) -> None:
    """Send one framed batch (:meth:`.wire.Batch.framed`); OSError with the kernel's errno
    (and the refused message's number) if it was refused. The kernel handles a batch while
    ``send`` runs and answers only what it refused (as for nft's batches, no message asks
    for an acknowledgement: a large batch's acks would overflow the socket), so every answer
    is queued when ``send`` returns, and none means done."""
    data = b"".join(messages)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
        sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)  # errors without the message echoed
        if len(data) > 1 << 17:  # one datagram holds the whole batch
            sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, len(data) + 4096)
        sock.bind((0, 0))
        sock.send(data)
        failure: tuple[int, int] | None = None
        while True:
            try:
                reply = sock.recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            for seq, code in _acks(reply):
                if code and failure is None:
                    failure = (seq, code)
    if failure is not None:
        seq, code = failure
        where = f"message {seq} of {len(messages) - 2}" if seq else "at commit"
        raise OSError(-code, f"{os.strerror(-code)} ({where})")


def _acks(data: bytes):
    """(sequence number, error code) of each NLMSG_ERROR in ``data``; 0 is an ack."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind, _flags, seq, _pid = struct.unpack_from("=IHHII", data, offset)
        if kind == NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", data, offset + 16)
            yield seq, code
        offset += (length + 3) & ~3


def _count_replies(sock: socket.socket, seq: int) -> int | None:
    count = 0
    while True:
        data = sock.recv(1 << 16)
        offset = 0
        while offset + 16 <= len(data):
            length, kind, _flags, msg_seq, _pid = struct.unpack_from("=IHHII", data, offset)
            if msg_seq == seq:
                if kind == NLMSG_DONE:
                    return count
                if kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", data, offset + 16)
                    if -code in (errno.ENOENT,):
                        return None
                    raise OSError(-code, os.strerror(-code))
                if kind & 0xFF == NFT_MSG_NEWRULE:
                    count += 1
            offset += (length + 3) & ~3
