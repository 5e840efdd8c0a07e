"""The netlink side of partial syncs, without a kernel: keys, rule shapes, batch framing.

Whether the kernel ends up with what nft would have written is checked for real in
tests/integration/proxy/test_proxy_nftables_partial_netns.py.
"""

from __future__ import annotations

import struct

import pytest

from kpyops.proxy.model import Endpoint, ServicePort, ServicePortName
from kpyops.proxy.nftables import encode
from kpyops.proxy.nftables import wire as w
from kpyops.proxy.nftables.rules import service_objects
from kpyops.proxy.nftables.transaction import Transaction
from kpyops.proxy.options import RuleOptions


def test_keys_pad_each_part_of_a_concatenation_to_a_register():
    assert encode.key("10.96.0.1", 4) == bytes([10, 96, 0, 1])
    assert encode.key("10.96.0.1 . tcp . 80", 4) == (
        bytes([10, 96, 0, 1]) + bytes([6, 0, 0, 0]) + bytes([0, 80, 0, 0])
    )
    assert encode.key("udp . 30053", 4) == bytes([17, 0, 0, 0]) + struct.pack(">H", 30053) + b"\0\0"
    assert len(encode.key("fd00::1 . sctp . 3868", 6)) == 16 + 4 + 4
    with pytest.raises(encode.Unsupported):
        encode.key("fd00::1", 4)


def names(expressions: list[bytes]) -> list[str]:
    """The expression names of an encoded rule, in order."""
    out = []
    for expr in expressions:
        # list element header, then NFTA_EXPR_NAME: length, type, name
        (length,) = struct.unpack_from("=H", expr, 4)
        out.append(expr[8 : 4 + length].rstrip(b"\0").decode())
    return out


def test_every_rule_of_every_kind_of_service_is_translated():
    spn = ServicePortName("ns", "svc", "http")
    svc = ServicePort(
        spn, ("10.96.0.1",), 80, node_port=30080, external_ips=("192.0.2.1",),
        load_balancer_ips=("198.51.100.1",), load_balancer_source_ranges=("203.0.113.0/24",),
        session_affinity_client_ip=True, external_policy_local=True,
    )  # fmt: skip
    eps = (Endpoint("10.1.0.1", 8080, is_local=True), Endpoint("10.1.0.2", 8080))
    for opts in (RuleOptions(cluster_cidrs=("10.128.0.0/9",)), RuleOptions(masquerade_all=True)):
        objs = service_objects(svc, eps, opts)
        assert len(objs.chains) == 6  # service, local, external, firewall, 2 endpoints
        for rules in objs.chains.values():
            for rule in rules:
                assert encode.rule(rule, 4), rule
    endpoint = encode.rule("meta l4proto tcp dnat to 10.1.0.1:8080", 4)
    assert names(endpoint) == ["meta", "cmp", "immediate", "immediate", "nat"]
    assert names(encode.rule("ip6 saddr fd00::/64 goto x", 6)) == ["payload", "cmp", "immediate"]
    masked = encode.rule("ip saddr != 10.128.0.0/9 drop", 4)
    assert names(masked) == ["payload", "bitwise", "cmp", "immediate"]


@pytest.mark.parametrize(
    "rule",
    [
        "ip saddr != { 10.0.0.0/8, 192.168.0.0/16 } drop",  # an anonymous set: nft -f
        "ct state new drop",
        "ip daddr 10.0.0.1 tcp dport http accept",
        "ip6 saddr 10.0.0.1 drop",
        "numgen random mod 3 == 1 goto x",
    ],
)
def test_shapes_it_does_not_know_are_left_to_nft(rule):
    with pytest.raises(encode.Unsupported):
        encode.rule(rule, 6 if rule.startswith("ip6") else 4)


def test_a_transaction_unknown_to_the_encoder_says_so():
    tx = Transaction(4)
    tx.chains.append(("firewall-x/y", ("ip saddr != { 10.0.0.0/8, 192.168.0.0/16 } drop",)))
    with pytest.raises(encode.Unsupported):
        tx.batch()
    assert "ip saddr != { 10.0.0.0/8, 192.168.0.0/16 } drop" in tx.text()


def test_batch_frames_numbered_messages():
    tx = Transaction(4)
    tx.add_chain("service-x/y")
    tx.flush_chain("service-x/y")
    tx.chains.append(("service-x/y", ("goto endpoint-x/y",)))
    tx.element_removals["service-ips"] = ["10.96.0.1 . tcp . 80"]
    tx.element_additions["service-ips"] = [("10.96.0.1 . tcp . 80", "goto service-x/y")]
    tx.chain_removals.append("endpoint-old/y")
    framed = tx.batch().framed()
    kinds, seqs = [], []
    for msg in framed:
        length, kind, flags, seq, _ = struct.unpack_from("=IHHII", msg)
        assert length == len(msg) and flags & w.NLM_F_REQUEST
        kinds.append(kind & 0xFF if kind >> 8 == w.NFNL_SUBSYS_NFTABLES else kind)
        seqs.append(seq)
    assert kinds == [
        w.NFNL_MSG_BATCH_BEGIN, w.NFT_MSG_NEWCHAIN, w.NFT_MSG_DELRULE, w.NFT_MSG_NEWCHAIN,
        w.NFT_MSG_NEWRULE, w.NFT_MSG_DELSETELEM, w.NFT_MSG_NEWSETELEM, w.NFT_MSG_DELCHAIN,
        w.NFNL_MSG_BATCH_END,
    ]  # fmt: skip
    assert seqs[1:-1] == list(range(1, 8))
