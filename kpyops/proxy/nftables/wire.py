"""nf_tables netlink messages, as bytes: the few kinds a partial sync sends.

A message is an nlmsghdr, an nfgenmsg and attributes (type-length-value, 4-byte aligned,
numbers big-endian, nested attributes flagged NLA_F_NESTED), as libnftnl writes them. The
constants are those of the kernel's uapi headers (linux/netfilter/nf_tables.h,
nfnetlink.h). Nothing here opens a socket: :mod:`.netlink` sends a batch.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable

NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN = 0x10
NFNL_MSG_BATCH_END = 0x11
NFT_MSG_NEWCHAIN = 3
NFT_MSG_DELCHAIN = 5
NFT_MSG_NEWRULE = 6
NFT_MSG_DELRULE = 8
NFT_MSG_NEWSET = 9
NFT_MSG_DELSET = 11
NFT_MSG_NEWSETELEM = 12
NFT_MSG_DELSETELEM = 14

NLM_F_REQUEST = 0x1
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800
NLA_F_NESTED = 0x8000

NFPROTO = {4: socket.AF_INET, 6: socket.AF_INET6}  # NFPROTO_IPV4 = 2, NFPROTO_IPV6 = 10

# enum nft_chain_attributes / nft_rule_attributes / nft_set_attributes
NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME = 1, 3
NFTA_RULE_TABLE, NFTA_RULE_CHAIN, NFTA_RULE_EXPRESSIONS = 1, 2, 4
NFTA_SET_TABLE, NFTA_SET_NAME, NFTA_SET_FLAGS, NFTA_SET_KEY_TYPE, NFTA_SET_KEY_LEN = 1, 2, 3, 4, 5
NFTA_SET_ID, NFTA_SET_TIMEOUT, NFTA_SET_USERDATA = 10, 11, 13
NFT_SET_TIMEOUT, NFT_SET_EVAL = 0x10, 0x20
# enum nft_set_elem_list_attributes / nft_set_elem_attributes
NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_ELEMENTS = 1, 2, 3
NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_DATA = 1, 2
NFTA_LIST_ELEM = 1
# enum nft_expr_attributes, nft_data_attributes, nft_verdict_attributes
NFTA_EXPR_NAME, NFTA_EXPR_DATA = 1, 2
NFTA_DATA_VALUE, NFTA_DATA_VERDICT = 1, 2
NFTA_VERDICT_CODE, NFTA_VERDICT_CHAIN = 1, 2
NF_DROP, NF_ACCEPT, NFT_JUMP, NFT_GOTO = 0, 1, -3, -4

# nft's set user data for an address key: NFTNL_UDATA_SET_KEYBYTEORDER = BYTEORDER_BIG_ENDIAN
ADDRESS_SET_USERDATA = b"\x00\x04\x02\x00\x00\x00"
DATATYPE = {4: (7, 4), 6: (8, 16)}  # TYPE_IPADDR / TYPE_IP6ADDR, key length


def attr(kind: int, payload: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)


def string(kind: int, text: str) -> bytes:
    return attr(kind, text.encode() + b"\0")


def u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack(">I", value))


def u64(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack(">Q", value))


def nested(kind: int, *parts: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(parts))


def value(kind: int, data: bytes) -> bytes:
    """An nft_data attribute holding raw bytes (a key, a compared value, a mask)."""
    return nested(kind, attr(NFTA_DATA_VALUE, data))


def verdict(kind: int, code: int, chain: str | None = None) -> bytes:
    """An nft_data attribute holding a verdict (jump/goto name a chain)."""
    inner = attr(NFTA_VERDICT_CODE, struct.pack(">i", code))
    if chain is not None:
        inner += string(NFTA_VERDICT_CHAIN, chain)
    return nested(kind, nested(NFTA_DATA_VERDICT, inner))


def expression(name: str, *attrs: bytes) -> bytes:
    """One element of a rule's expression list."""
    return nested(NFTA_LIST_ELEM, string(NFTA_EXPR_NAME, name), nested(NFTA_EXPR_DATA, *attrs))


def message(kind: int, flags: int, family: int, seq: int, *attrs: bytes) -> bytes:
    body = struct.pack("=BBH", family, 0, 0) + b"".join(attrs)  # nfgenmsg
    nltype = (NFNL_SUBSYS_NFTABLES << 8) | kind
    return struct.pack("=IHHII", 16 + len(body), nltype, flags | NLM_F_REQUEST, seq, 0) + body


def batch_marker(kind: int, seq: int) -> bytes:
    """NFNL_MSG_BATCH_BEGIN / _END: res_id names the nf_tables subsystem (big-endian)."""
    body = struct.pack("=BB", socket.AF_UNSPEC, 0) + struct.pack(">H", NFNL_SUBSYS_NFTABLES)
    return struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST, seq, 0) + body


class Batch:
    """The messages of one transaction, numbered from 1. As nft's, they ask for no
    acknowledgement: the kernel answers only a refused message (or commit), by its number."""

    def __init__(self, family: int, table: str) -> None:
        self.family = NFPROTO[family]
        self.ip_family = family
        self.table = table
        self.messages: list[bytes] = []

    def _add(self, kind: int, flags: int, *attrs: bytes) -> None:
        seq = len(self.messages) + 1
        self.messages.append(message(kind, flags, self.family, seq, *attrs))

    def add_chain(self, name: str) -> None:
        self._add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, string(NFTA_CHAIN_TABLE, self.table),
                  string(NFTA_CHAIN_NAME, name))  # fmt: skip

    def flush_chain(self, name: str) -> None:
        """Every rule of the chain deleted (a rule deletion naming no rule)."""
        self._add(NFT_MSG_DELRULE, 0, string(NFTA_RULE_TABLE, self.table),
                  string(NFTA_RULE_CHAIN, name))  # fmt: skip

    def delete_chain(self, name: str) -> None:
        self._add(NFT_MSG_DELCHAIN, 0, string(NFTA_CHAIN_TABLE, self.table),
                  string(NFTA_CHAIN_NAME, name))  # fmt: skip

    def add_rule(self, chain: str, expressions: Iterable[bytes]) -> None:
        self._add(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND,
                  string(NFTA_RULE_TABLE, self.table), string(NFTA_RULE_CHAIN, chain),
                  nested(NFTA_RULE_EXPRESSIONS, *expressions))  # fmt: skip

    def add_timeout_set(self, name: str, timeout_seconds: int) -> None:
        """An address set with ``flags dynamic,timeout`` and a default timeout (affinity)."""
        key_type, key_len = DATATYPE[self.ip_family]
        self._add(NFT_MSG_NEWSET, NLM_F_CREATE, string(NFTA_SET_TABLE, self.table),
                  string(NFTA_SET_NAME, name), u32(NFTA_SET_FLAGS, NFT_SET_TIMEOUT | NFT_SET_EVAL),
                  u32(NFTA_SET_KEY_TYPE, key_type), u32(NFTA_SET_KEY_LEN, key_len),
                  u32(NFTA_SET_ID, len(self.messages) + 1),
                  u64(NFTA_SET_TIMEOUT, timeout_seconds * 1000),
                  attr(NFTA_SET_USERDATA, ADDRESS_SET_USERDATA))  # fmt: skip

    def delete_set(self, name: str) -> None:
        self._add(NFT_MSG_DELSET, 0, string(NFTA_SET_TABLE, self.table),
                  string(NFTA_SET_NAME, name))  # fmt: skip

    def elements(self, add: bool, container: str, elements: Iterable[bytes]) -> None:
        """Add or delete elements (each from :func:`element`) of one set or map."""
        kind, flags = (NFT_MSG_NEWSETELEM, NLM_F_CREATE) if add else (NFT_MSG_DELSETELEM, 0)
        self._add(kind, flags, string(NFTA_SET_ELEM_LIST_TABLE, self.table),
                  string(NFTA_SET_ELEM_LIST_SET, container),
                  nested(NFTA_SET_ELEM_LIST_ELEMENTS, *elements))  # fmt: skip

    def framed(self) -> list[bytes]:
        """The messages between a batch begin and a batch end."""
        end = len(self.messages) + 1
        return [batch_marker(NFNL_MSG_BATCH_BEGIN, 0), *self.messages,
                batch_marker(NFNL_MSG_BATCH_END, end)]  # fmt: skip


def element(key: bytes, data: bytes | None = None) -> bytes:
    """One set element: its key, and for a map its data (an nft_data attribute)."""
    parts = [value(NFTA_SET_ELEM_KEY, key)]
    if data is not None:
        parts.append(data)
    return nested(NFTA_LIST_ELEM, *parts)
