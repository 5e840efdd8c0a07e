"""A partial sync's transaction, written two ways: nft text, or an nf_tables netlink batch.

Its steps, in order: chains created and flushed, affinity sets created; chains (re)written;
map and set elements deleted, then added (a changed value is both); sets deleted; unused
chains deleted. :meth:`Transaction.text` is what ``nft -f`` reads; :meth:`Transaction.batch`
is the same transaction as netlink messages (no nft, so no cache of the whole table to load
first), or raises :class:`.encode.Unsupported` if a rule has a shape it does not translate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kpyops.proxy.nftables import encode
from kpyops.proxy.nftables import names as n
from kpyops.proxy.nftables.wire import Batch, element

ADD_CHAIN, FLUSH_CHAIN, ADD_SET = "add chain", "flush chain", "add set"


@dataclass
class Transaction:
    family: int
    declare: list[tuple[str, str, int]] = field(default_factory=list)  # (step, name, timeout)
    chains: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # name, rules
    element_removals: dict[str, list[str]] = field(default_factory=dict)  # map -> keys
    element_additions: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    set_removals: list[str] = field(default_factory=list)
    chain_removals: list[str] = field(default_factory=list)

    @property
    def table(self) -> str:
        return n.table_ref(self.family)

    def add_chain(self, name: str) -> None:
        self.declare.append((ADD_CHAIN, name, 0))

    def flush_chain(self, name: str) -> None:
        self.declare.append((FLUSH_CHAIN, name, 0))

    def add_set(self, name: str, timeout: int) -> None:
        self.declare.append((ADD_SET, name, timeout))

    def __bool__(self) -> bool:
        return bool(
            self.declare or self.chains or self.set_removals or self.chain_removals
            or any(self.element_removals.values()) or any(self.element_additions.values())
        )  # fmt: skip

    def text(self) -> str:
        t = self.table
        lines = [
            set_decl(t, name, timeout) if step == ADD_SET else f"{step} {t} {name}"
            for step, name, timeout in self.declare
        ]
        if self.chains:
            blocks = [chain_block(name, rules) for name, rules in self.chains]
            lines.append(f"table {t} {{\n" + "\n".join(blocks) + "\n}")
        lines += [
            f"delete element {t} {c} {{ {', '.join(keys)} }}"
            for c, keys in self.element_removals.items() if keys
        ]  # fmt: skip
        lines += [
            f"add element {t} {c} {{ {', '.join(element_text(k, v) for k, v in items)} }}"
            for c, items in self.element_additions.items() if items
        ]  # fmt: skip
        lines += [f"delete set {t} {s}" for s in self.set_removals]
        lines += [f"delete chain {t} {c}" for c in self.chain_removals]
        return "\n".join(lines) + "\n" if lines else ""

    def batch(self) -> Batch:
        """The same steps as netlink messages; raises encode.Unsupported."""
        family = self.family
        out = Batch(family, n.TABLE)
        for step, name, timeout in self.declare:
            if step == ADD_CHAIN:
                out.add_chain(name)
            elif step == FLUSH_CHAIN:
                out.flush_chain(name)
            else:
                out.add_timeout_set(name, timeout)
        for name, rules in self.chains:
            out.add_chain(name)
            for rule in rules:
                out.add_rule(name, encode.rule(rule, family))
        for container, keys in self.element_removals.items():
            if keys:
                out.elements(False, container, [element(encode.key(k, family)) for k in keys])
        for container, items in self.element_additions.items():
            if items:
                out.elements(True, container, [
                    element(encode.key(k, family), encode.map_value(v) if v else None)
                    for k, v in items
                ])  # fmt: skip
        for name in self.set_removals:
            out.delete_set(name)
        for name in self.chain_removals:
            out.delete_chain(name)
        return out


def chain_block(name: str, rules: tuple[str, ...]) -> str:
    return f"chain {name} {{\n" + "\n".join(rules) + "\n}"


def set_decl(table: str, name: str, timeout: int) -> str:
    addr = "ipv6_addr" if table.startswith("ip6 ") else "ipv4_addr"
    return f"add set {table} {name} {{ type {addr}; flags dynamic,timeout; timeout {timeout}s; }}"


def element_text(key: str, value: str) -> str:
    return f"{key} : {value}" if value else key
