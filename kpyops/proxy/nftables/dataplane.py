"""NftablesDataplane: kube-proxy's nftables mode in one table, one transaction per sync:
``nft -f`` for a full sync, one netlink batch (:mod:`.transaction`) for a partial one.

A full sync flushes the table (every rule of every chain; affinity sets keep their members)
and writes it all again: the fixed chains, every service's chains, and the verdict maps
emptied and refilled. A partial sync touches only the changed service ports: their chains
whose rules changed (added or flushed and rewritten; the others are left alone), their
affinity sets, and the map elements they added, changed or dropped. Map elements are owned by
service ports (two ports can share a key, e.g. one ClusterIP in the cluster-ips set), so an
element is deleted only when its last owner lets go of it. The work of a partial sync does
not depend on the number of services; nor, sent as a netlink batch, does its cost in user
space (nft would first load its cache of every chain of the ruleset). The kernel's part does:
a new rule with a jump, ``meta`` or ``nat`` makes it validate the whole table at commit.

Chains nothing refers to any more are flushed at once and deleted by a later sync, at least
``stale_delay`` seconds afterwards (in that sync's transaction): on kernels before 6.2 a
chain a verdict-map element pointed to cannot be deleted at once (the element's reference is
dropped asynchronously), so deleting it in the same transaction would fail the whole sync.

The kernel is read only when our view of it may be wrong (first sync, after a failure or a
failed canary check): the per-service chains and sets of our table are listed then, so that
a full sync also removes those this process did not write.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kpyops.proxy.dataplane import DataplaneError, SyncResult
from kpyops.proxy.model import EndpointsMap, ServiceMap, ServicePortName
from kpyops.proxy.nftables import names as n
from kpyops.proxy.nftables import netlink
from kpyops.proxy.nftables.commands import NftCommands
from kpyops.proxy.nftables.rules import ServiceObjects, fixed_chains, service_objects, table_setup
from kpyops.proxy.nftables.transaction import Transaction, chain_block, element_text, set_decl
from kpyops.proxy.options import RuleOptions

log = logging.getLogger(__name__)

STALE_DELAY = 1.0  # seconds between flushing an unused chain and deleting it
CANARY_CHAINS = (*(bc.name for bc in n.BASE_CHAINS), n.SERVICES)


class NftablesDataplane:
    """kube-proxy's nftables mode for one IP family, in the table ``kpyops-proxy``."""

    def __init__(
        self,
        options: RuleOptions | None = None,
        commands: NftCommands | None = None,
        clock: Callable[[], float] = time.monotonic,
        stale_delay: float = STALE_DELAY,
        count_rules: Callable[[int, str, list[str]], dict[str, int | None]] = netlink.count_rules,
    ) -> None:
        self.options = options or RuleOptions()
        self.commands = commands or NftCommands()
        self.clock = clock
        self.stale_delay = stale_delay
        self.count_rules = count_rules
        self.table = n.table_ref(self.options.family)
        self._objects: dict[ServicePortName, ServiceObjects] = {}
        self._inputs: dict[ServicePortName, tuple] = {}
        # map/set -> key -> {owner: value}; and what the kernel holds: map/set -> key -> value
        self._owners: dict[str, dict[str, dict[ServicePortName, str]]] = {}
        self._written: dict[str, dict[str, str]] = {}
        self._stale: dict[str, float] = {}  # chain -> when it was flushed (unreferenced)
        self._kernel_known = False
        self._base_chains_reset = False
        self.last_input = ""
        self.last_transaction: Transaction | None = None  # the last partial sync's

    # -- sync -------------------------------------------------------------------------------

    def sync(
        self, services: ServiceMap, endpoints: EndpointsMap, changed: set[ServicePortName] | None
    ) -> SyncResult:
        start = time.perf_counter()
        full = changed is None or not self._kernel_known
        listed: tuple[set[str], set[str]] | None = None
        if not self._kernel_known:
            listed = self._list_service_objects()
        due = self._due_stale_chains()
        deleted = 0
        read_seconds = time.perf_counter() - start

        opts = self.options
        t = self.table
        declare: list[str] = []  # full sync: add set
        bodies: list[str] = []  # full sync: chain bodies, in one table block
        removals: list[str] = []  # full sync: set deletions, last
        tx = Transaction(opts.family)  # partial sync: its steps
        now = self.clock()
        previous = self._objects
        old_chains: set[str] = set()
        old_sets: set[str] = set()
        touched: set[tuple[str, str]] = set()
        if full and listed is not None:  # the kernel's copy is the truth
            old_chains, old_sets = listed
            self._stale = {c: since for c, since in self._stale.items() if c in old_chains}
        elif full:
            old_chains = set(self._stale)
            for objs in previous.values():
                old_chains.update(objs.chains)
                old_sets.update(objs.sets)
        if full:
            self._objects = {}
            self._owners = {c: {} for c in n.ELEMENT_CONTAINERS}
            self._written = {c: {} for c in n.ELEMENT_CONTAINERS}
            to_rebuild = list(services)
        else:
            to_rebuild = sorted(changed or ())
        written = 0
        for spn in to_rebuild:
            old = previous.get(spn) if full else self._objects.pop(spn, None)
            new = self._build(spn, services, endpoints, previous)
            if new is not None:
                self._objects[spn] = new
            if full:
                if new is not None:
                    written += 1
                    # the table block creates missing chains; the table was flushed
                    bodies += [chain_block(name, rules) for name, rules in new.chains.items()]
                    declare += [set_decl(t, s, timeout) for s, timeout in new.sets.items()]
                    self._claim(spn, None, new, None)
                continue
            wrote = self._diff_service(old, new, tx, now)
            self._claim(spn, old, new, touched)
            written += wrote or (new is not None and old is None)

        if full:
            active_chains = {c for objs in self._objects.values() for c in objs.chains}
            active_sets = {s for objs in self._objects.values() for s in objs.sets}
            for chain in old_chains - active_chains:  # already flushed with the table
                self._stale.setdefault(chain, now)
            for chain in active_chains:
                self._stale.pop(chain, None)
            stale_sets = sorted(old_sets - active_sets)
            removals += [f"delete set {t} {s}" for s in stale_sets]
            deleted += len(stale_sets) + len(old_chains - active_chains)
            additions = self._all_elements()
        else:
            tx.element_removals, tx.element_additions = self._element_changes(touched)
            deleted += len(tx.set_removals)
            deleted += sum(len(batch) for batch in tx.element_removals.values())

        # Chains flushed by an earlier transaction, a while ago; those this transaction
        # flushed or wrote again are not among them.
        due = [c for c in due if c in self._stale and self._stale[c] < now]
        if full:
            text_parts = table_setup(opts, reset_base_chains=not self._base_chains_reset)
            text_parts += declare
            if bodies:
                text_parts.append(f"table {t} {{\n" + "\n".join(bodies) + "\n}")
            text_parts += [
                f"add element {t} {c} {{ {', '.join(items)} }}"
                for c, items in additions.items() if items
            ]  # fmt: skip
            text_parts += removals
            text_parts += [f"delete chain {t} {c}" for c in due]
            text = "\n".join(text_parts) + "\n"
        else:
            tx.chain_removals = due
            text = tx.text()
        compute_seconds = time.perf_counter() - start - read_seconds

        apply_start = time.perf_counter()
        netlink_batch = False
        try:
            if full:
                self.commands.apply(text)
            elif tx:
                netlink_batch = self.commands.apply_transaction(tx)
        except DataplaneError:
            self._kernel_known = False  # the next (full) sync lists the kernel again
            raise
        apply_seconds = time.perf_counter() - apply_start
        for chain in due:
            del self._stale[chain]
        deleted += len(due)
        self.last_input = text
        self.last_transaction = None if full else tx
        self._kernel_known = True
        if full:
            self._base_chains_reset = True
        return SyncResult(
            full=full,
            services_written=int(written),
            objects_deleted=deleted,
            compute_seconds=compute_seconds,
            apply_seconds=apply_seconds,
            details={
                "read_seconds": read_seconds,
                "nft_bytes": float(len(text)),
                "stale_chains_pending": float(len(self._stale)),
                "netlink_batch": float(netlink_batch),
            },
        )

    def _build(
        self,
        spn: ServicePortName,
        services: ServiceMap,
        endpoints: EndpointsMap,
        previous: dict[ServicePortName, ServiceObjects],
    ) -> ServiceObjects | None:
        """The objects of one service port, reused when built from equal inputs."""
        svc = services.get(spn)
        if svc is None:
            self._inputs.pop(spn, None)
            return None
        inputs = (svc, endpoints.get(spn, ()), self.options)
        if spn in previous and self._inputs.get(spn) == inputs:
            return previous[spn]  # a pure function of unchanged inputs
        self._inputs[spn] = inputs
        return service_objects(*inputs)

    def _diff_service(
        self, old: ServiceObjects | None, new: ServiceObjects | None, tx: Transaction, now: float
    ) -> bool:
        """Partial sync of one service port's chains and sets; True if any was written."""
        old_chains = old.chains if old else {}
        new_chains = new.chains if new else {}
        old_sets = old.sets if old else {}
        new_sets = new.sets if new else {}
        wrote = False
        for name, rules in new_chains.items():
            if old_chains.get(name) == rules and name not in self._stale:
                continue
            tx.add_chain(name)
            tx.flush_chain(name)
            tx.chains.append((name, rules))
            self._stale.pop(name, None)
            wrote = True
        for name in old_chains:
            if name not in new_chains:
                tx.flush_chain(name)
                self._stale.setdefault(name, now)
        for name, timeout in new_sets.items():
            if old_sets.get(name) != timeout:
                tx.add_set(name, timeout)
                wrote = True
        tx.set_removals += [name for name in old_sets if name not in new_sets]
        return wrote

    def _claim(
        self,
        spn: ServicePortName,
        old: ServiceObjects | None,
        new: ServiceObjects | None,
        touched: set[tuple[str, str]] | None,
    ) -> None:
        """Move ``spn``'s ownership of map elements from ``old`` to ``new``."""
        if old is not None:
            for container, elements in old.elements.items():
                owners = self._owners[container]
                for key in elements:
                    held = owners.get(key)
                    if held is not None:
                        held.pop(spn, None)
                        if not held:
                            del owners[key]
                    if touched is not None:
                        touched.add((container, key))
        if new is not None:
            for container, elements in new.elements.items():
                owners = self._owners[container]
                for key, value in elements.items():
                    owners.setdefault(key, {})[spn] = value
                    if touched is not None:
                        touched.add((container, key))

    def _desired(self, container: str, key: str) -> str | None:
        held = self._owners[container].get(key)
        if not held:
            return None
        return held[min(held)] if len(held) > 1 else next(iter(held.values()))

    def _all_elements(self) -> dict[str, list[str]]:
        """Every element of every map (full sync), recorded as written."""
        out: dict[str, list[str]] = {}
        for container, owners in self._owners.items():
            items = out.setdefault(container, [])
            written = self._written[container]
            for key in owners:
                value = self._desired(container, key) or ""
                written[key] = value
                items.append(element_text(key, value))
        return out

    def _element_changes(
        self, touched: set[tuple[str, str]]
    ) -> tuple[dict[str, list[str]], dict[str, list[tuple[str, str]]]]:
        """Deletions and additions turning the written elements of ``touched`` into the
        desired ones; recorded as written."""
        removals: dict[str, list[str]] = {}
        additions: dict[str, list[tuple[str, str]]] = {}
        for container, key in sorted(touched):
            want = self._desired(container, key)
            written = self._written[container]
            have = written.get(key)
            if want == have:
                continue
            if have is not None:
                removals.setdefault(container, []).append(key)
                del written[key]
            if want is not None:
                additions.setdefault(container, []).append((key, want))
                written[key] = want
        return removals, additions

    def _due_stale_chains(self) -> list[str]:
        """The chains flushed (and unreferenced) at least ``stale_delay`` ago: safe to delete
        now, on any kernel, in whatever transaction comes next."""
        now = self.clock()
        if not self._kernel_known:
            return []
        return sorted(c for c, since in self._stale.items() if now - since >= self.stale_delay)

    def _list_service_objects(self) -> tuple[set[str], set[str]]:
        """The per-service chains and sets in the kernel's copy of our table."""
        family = n.family_keyword(self.options.family)
        chains = self.commands.list_json("chains", family) or []
        sets = self.commands.list_json("sets", "table", family, n.TABLE) or []
        return (
            {
                o["chain"]["name"]
                for o in chains
                if "chain" in o and o["chain"].get("table") == n.TABLE
                and n.is_service_object(o["chain"]["name"])
            },
            {o["set"]["name"] for o in sets if "set" in o and n.is_service_object(o["set"]["name"])},
        )

    # -- canary and cleanup ---------------------------------------------------------------------

    def check_canary(self) -> bool:
        """False if our table is gone, or a base chain or the services chain does not hold
        the rules we wrote (flushed by someone else): the loop then does a full sync. One
        filtered netlink dump per chain (``nft list chain`` would load its whole cache)."""
        wanted = fixed_chains(self.options)
        try:
            counts = self.count_rules(self.options.family, n.TABLE, list(CANARY_CHAINS))
        except OSError as err:
            log.warning("cannot read nftables chains for the canary check: %s", err)
            counts = {}
        lost = [c for c in CANARY_CHAINS if counts.get(c) != len(wanted[c])]
        if lost:
            log.warning("nftables chains of %s lost their rules (or are gone): %s",
                        self.table, ", ".join(lost))
            self._kernel_known = False
        return not lost

    def cleanup(self) -> None:
        """Delete our table (nothing else); fine if it does not exist."""
        self.commands.delete_table(n.family_keyword(self.options.family), n.TABLE)
        self._objects = {}
        self._inputs = {}
        self._owners = {}
        self._written = {}
        self._stale = {}
        self._kernel_known = False
