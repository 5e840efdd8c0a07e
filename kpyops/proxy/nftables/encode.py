"""Our nft text as nf_tables bytecode: the rules of per-service chains, map keys and values.

:func:`rule` reads exactly the rule shapes :mod:`.rules` writes into per-service chains
(``service-``, ``local-``, ``external-``, ``firewall-``, ``endpoint-``) and gives the
expressions nft 1.0.6 generates for them (``nft --debug=netlink`` shows them), so the
kernel holds the same rule whoever sent it. Anything else (an anonymous set such as
``{ 10.0.0.0/8, 192.168.0.0/16 }``, a word it does not know) raises :class:`Unsupported`,
and the caller hands the transaction to ``nft -f`` instead.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

from kpyops.proxy.nftables import wire as w


class Unsupported(ValueError):
    """Text this module does not translate (nft -f will)."""


PROTOCOLS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP, "sctp": socket.IPPROTO_SCTP}
ADDRESS_OFFSETS = {"ip": {"saddr": 12, "daddr": 16}, "ip6": {"saddr": 8, "daddr": 24}}
FAMILIES = {"ip": 4, "ip6": 6}

REG_VERDICT, REG_1, REG_2 = 0, 1, 2
PAYLOAD_NETWORK, PAYLOAD_TRANSPORT = 1, 2
CMP_EQ, CMP_NEQ = 0, 1
META_L4PROTO = 16
NG_RANDOM = 1
FIB_RESULT_ADDRTYPE, FIB_F_SADDR = 3, 1
RTN_LOCAL = 2
DYNSET_OP_UPDATE = 1
NAT_DNAT, NAT_RANGE_PROTO_SPECIFIED = 1, 2

# attribute numbers of each expression (enum nft_*_attributes)
PAYLOAD_DREG, PAYLOAD_BASE, PAYLOAD_OFFSET, PAYLOAD_LEN = 1, 2, 3, 4
CMP_SREG, CMP_OP, CMP_DATA = 1, 2, 3
BITWISE_SREG, BITWISE_DREG, BITWISE_LEN, BITWISE_MASK, BITWISE_XOR = 1, 2, 3, 4, 5
META_DREG, META_KEY = 1, 2
IMMEDIATE_DREG, IMMEDIATE_DATA = 1, 2
NG_DREG, NG_MODULUS, NG_TYPE = 1, 2, 3
LOOKUP_SET, LOOKUP_SREG = 1, 2
DYNSET_SET_NAME, DYNSET_OP, DYNSET_SREG_KEY = 1, 3, 4
FIB_DREG, FIB_RESULT, FIB_FLAGS = 1, 2, 3
NAT_TYPE, NAT_FAMILY, NAT_REG_ADDR_MIN, NAT_REG_PROTO_MIN, NAT_FLAGS = 1, 2, 3, 5, 7


def _payload(base: int, offset: int, length: int) -> bytes:
    return w.expression("payload", w.u32(PAYLOAD_DREG, REG_1), w.u32(PAYLOAD_BASE, base),
                        w.u32(PAYLOAD_OFFSET, offset), w.u32(PAYLOAD_LEN, length))  # fmt: skip


def _cmp(op: int, data: bytes) -> bytes:
    return w.expression("cmp", w.u32(CMP_SREG, REG_1), w.u32(CMP_OP, op),
                        w.value(CMP_DATA, data))  # fmt: skip


def _verdict(code: int, chain: str | None = None) -> bytes:
    return w.expression("immediate", w.u32(IMMEDIATE_DREG, REG_VERDICT),
                        w.verdict(IMMEDIATE_DATA, code, chain))  # fmt: skip


def _l4proto(name: str) -> list[bytes]:
    if name not in PROTOCOLS:
        raise Unsupported(f"protocol {name}")
    meta = w.expression("meta", w.u32(META_DREG, REG_1), w.u32(META_KEY, META_L4PROTO))
    return [meta, _cmp(CMP_EQ, bytes([PROTOCOLS[name]]))]


def _address_match(family: str, field: str, op: int, text: str) -> list[bytes]:
    """``ip saddr [!=] 10.0.0.1`` or a prefix: nft loads only the prefix's bytes when it
    ends on a byte, else the whole address through a mask."""
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as err:
        raise Unsupported(text) from err
    if net.version != FAMILIES[family]:
        raise Unsupported(f"{text} in an {family} rule")
    offset = ADDRESS_OFFSETS[family][field]
    size = net.max_prefixlen // 8
    bits = net.prefixlen
    address = net.network_address.packed
    if bits and bits % 8 == 0:
        return [_payload(PAYLOAD_NETWORK, offset, bits // 8), _cmp(op, address[: bits // 8])]
    mask = net.netmask.packed
    bitwise = w.expression(
        "bitwise", w.u32(BITWISE_SREG, REG_1), w.u32(BITWISE_DREG, REG_1),
        w.u32(BITWISE_LEN, size), w.value(BITWISE_MASK, mask),
        w.value(BITWISE_XOR, bytes(size)),
    )  # fmt: skip
    return [_payload(PAYLOAD_NETWORK, offset, size), bitwise, _cmp(op, address)]


def _address_load(family: str, field: str) -> bytes:
    return _payload(PAYLOAD_NETWORK, ADDRESS_OFFSETS[family][field], 16 if family == "ip6" else 4)


def _dnat(family: str, target: str) -> list[bytes]:
    """``dnat to 10.0.0.1:80`` / ``dnat to [fd00::1]:80``."""
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise Unsupported(f"dnat to {target}")
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError as err:
        raise Unsupported(f"dnat to {target}") from err
    if address.version != FAMILIES[family]:
        raise Unsupported(f"dnat to {target} in an {family} rule")
    data = [
        w.expression("immediate", w.u32(IMMEDIATE_DREG, REG_1),
                     w.value(IMMEDIATE_DATA, address.packed)),
        w.expression("immediate", w.u32(IMMEDIATE_DREG, REG_2),
                     w.value(IMMEDIATE_DATA, struct.pack(">H", int(port)))),
    ]  # fmt: skip
    nat = w.expression(
        "nat", w.u32(NAT_TYPE, NAT_DNAT), w.u32(NAT_FAMILY, w.NFPROTO[FAMILIES[family]]),
        w.u32(NAT_REG_ADDR_MIN, REG_1), w.u32(NAT_REG_PROTO_MIN, REG_2),
        w.u32(NAT_FLAGS, NAT_RANGE_PROTO_SPECIFIED),
    )  # fmt: skip
    return [*data, nat]


def rule(text: str, family: int) -> list[bytes]:
    """The expressions of one rule of a per-service chain (see the module docstring)."""
    fam = "ip" if family == 4 else "ip6"
    words = text.split()
    out: list[bytes] = []
    i = 0

    def take(count: int) -> list[str]:
        nonlocal i
        if i + count > len(words):
            raise Unsupported(text)
        i += count
        return words[i - count : i]

    while i < len(words):
        word = words[i]
        if word == fam and i + 1 < len(words) and words[i + 1] in ("saddr", "daddr"):
            _, field, operand = take(3)
            op = CMP_EQ
            if operand == "!=":
                op, operand = CMP_NEQ, take(1)[0]
            if operand.startswith("{"):
                raise Unsupported(text)  # an anonymous set
            if operand.startswith("@"):
                if op != CMP_EQ:
                    raise Unsupported(text)
                lookup = w.expression("lookup", w.string(LOOKUP_SET, operand[1:]),
                                      w.u32(LOOKUP_SREG, REG_1))  # fmt: skip
                out += [_address_load(fam, field), lookup]
            else:
                out += _address_match(fam, field, op, operand)
        elif word in PROTOCOLS and words[i + 1 : i + 2] == ["dport"]:
            proto, _, port = take(3)
            if not port.isdigit():
                raise Unsupported(text)
            out += _l4proto(proto)
            out += [_payload(PAYLOAD_TRANSPORT, 2, 2), _cmp(CMP_EQ, struct.pack(">H", int(port)))]
        elif words[i : i + 2] == ["meta", "l4proto"]:
            out += _l4proto(take(3)[2])
        elif words[i : i + 4] == ["fib", "saddr", "type", "local"]:
            take(4)
            fib = w.expression("fib", w.u32(FIB_DREG, REG_1),
                               w.u32(FIB_RESULT, FIB_RESULT_ADDRTYPE),
                               w.u32(FIB_FLAGS, FIB_F_SADDR))  # fmt: skip
            out += [fib, _cmp(CMP_EQ, struct.pack("=I", RTN_LOCAL))]
        elif words[i : i + 3] == ["numgen", "random", "mod"]:
            _, _, _, modulus, eq, zero = take(6)
            if not modulus.isdigit() or (eq, zero) != ("==", "0"):
                raise Unsupported(text)
            numgen = w.expression("numgen", w.u32(NG_DREG, REG_1),
                                  w.u32(NG_MODULUS, int(modulus)),
                                  w.u32(NG_TYPE, NG_RANDOM))  # fmt: skip
            out += [numgen, _cmp(CMP_EQ, struct.pack("=I", 0))]
        elif word == "update":
            set_ref, *key = take(6)[1:]
            if not set_ref.startswith("@") or key != ["{", fam, "saddr", "}"]:
                raise Unsupported(text)
            dynset = w.expression("dynset", w.string(DYNSET_SET_NAME, set_ref[1:]),
                                  w.u32(DYNSET_OP, DYNSET_OP_UPDATE),
                                  w.u32(DYNSET_SREG_KEY, REG_1))  # fmt: skip
            out += [_address_load(fam, "saddr"), dynset]
        elif words[i : i + 2] == ["dnat", "to"]:
            out += _dnat(fam, take(3)[2])
        elif word in ("jump", "goto"):
            chain = take(2)[1]
            out.append(_verdict(w.NFT_JUMP if word == "jump" else w.NFT_GOTO, chain))
        elif word in ("drop", "accept"):
            take(1)
            out.append(_verdict(w.NF_DROP if word == "drop" else w.NF_ACCEPT))
        else:
            raise Unsupported(text)
    return out


def key(text: str, family: int) -> bytes:
    """A set or map key: ``10.96.0.1``, ``10.96.0.1 . tcp . 80``, ``tcp . 30080``. Parts
    of a concatenation each take a whole number of 4-byte registers."""
    parts = [p.strip() for p in text.split(" . ")]
    out = []
    for part in parts:
        if part in PROTOCOLS:
            data = bytes([PROTOCOLS[part]])
        elif part.isdigit():
            data = struct.pack(">H", int(part))
        else:
            try:
                address = ipaddress.ip_address(part)
            except ValueError as err:
                raise Unsupported(text) from err
            if address.version != family:
                raise Unsupported(text)
            data = address.packed
        if len(parts) > 1:
            data += bytes(-len(data) % 4)
        out.append(data)
    return b"".join(out)


def map_value(text: str) -> bytes:
    """A verdict map's value (``goto chain``, ``drop``) as the element's data attribute."""
    words = text.split()
    if len(words) == 2 and words[0] in ("goto", "jump"):
        code = w.NFT_GOTO if words[0] == "goto" else w.NFT_JUMP
        return w.verdict(w.NFTA_SET_ELEM_DATA, code, words[1])
    if words in (["drop"], ["accept"]):
        return w.verdict(w.NFTA_SET_ELEM_DATA, w.NF_DROP if words == ["drop"] else w.NF_ACCEPT)
    raise Unsupported(text)
