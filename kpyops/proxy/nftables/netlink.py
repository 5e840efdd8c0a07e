"""Counting the rules of a few chains with one filtered netlink dump each.

``nft list chain`` first loads nft's cache (every table, chain and set: 1.5 MB of netlink
messages at 1,000 services, ~0.6 s here), so it is too dear for the canary check, which runs
every syncPeriod. The kernel can dump the rules of one chain (NFT_MSG_GETRULE with the
table and chain as attributes); counting the replies is all the canary needs.
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
