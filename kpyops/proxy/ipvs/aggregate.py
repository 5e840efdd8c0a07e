"""The desired state kept per service port, and its union kept with reference counts.

:func:`~kpyops.proxy.ipvs.state.build_state` of one service port is that service port's
*part*. The union of the parts is what ``build_state`` gives for every service port at once:

- an ipset member or a kube-ipvs0 address can come from several service ports (the
  ports of one Service share their ClusterIP; services sharing a NodePort number share
  its ``KUBE-NODE-PORT-*`` member; an endpoint behind two services shares its
  ``KUBE-LOOP-BACK`` member), so each is counted and exists while its count is positive;
- a virtual server key claimed by several service ports belongs to the greatest name, as
  in ``build_state``, which visits names in order and lets the last one win.

:meth:`StateAggregate.replace` swaps the parts of some service ports and returns the
:class:`Delta`: the members and addresses whose existence changed, and the virtual server
keys to revisit. Its cost is that of the parts swapped, not of the whole state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kpyops.proxy.ipvs.ipset import SetSpec
from kpyops.proxy.ipvs.netlink import RealServer, VirtualServer
from kpyops.proxy.ipvs.state import DesiredState
from kpyops.proxy.model import ServicePortName

ServerKey = tuple[str, str, int]


@dataclass
class Delta:
    """What one :meth:`StateAggregate.replace` changed in the union."""

    members_added: dict[SetSpec, set[str]] = field(default_factory=dict)
    members_deleted: dict[SetSpec, set[str]] = field(default_factory=dict)
    bound_added: set[str] = field(default_factory=set)
    bound_deleted: set[str] = field(default_factory=set)
    servers: set[ServerKey] = field(default_factory=set)  # keys whose owner or content may differ


class StateAggregate:
    """Per-service-port parts and their reference-counted union."""

    def __init__(self) -> None:
        self.parts: dict[ServicePortName, DesiredState] = {}
        self.members: dict[SetSpec, Counter[str]] = {}
        self.bound: Counter[str] = Counter()
        self.claims: dict[ServerKey, set[ServicePortName]] = {}

    # --- reading the union --------------------------------------------------------------------
    def nonempty_sets(self) -> frozenset[SetSpec]:
        return frozenset(spec for spec, counts in self.members.items() if counts)

    def server(self, key: ServerKey) -> tuple[VirtualServer, frozenset[RealServer]] | None:
        """The virtual server wanted at ``key`` and its real servers, or None."""
        claimants = self.claims.get(key)
        if not claimants:
            return None
        part = self.parts[max(claimants)]
        return part.servers[key], part.real_servers[key]

    def state(self) -> DesiredState:
        """The whole union as one DesiredState (O(everything): for full syncs)."""
        out = DesiredState()
        for key, claimants in self.claims.items():
            owner = max(claimants)
            part = self.parts[owner]
            out.add_server(part.servers[key], part.real_servers[key], owner)
        out.bound = set(self.bound)
        out.ipsets = {spec: set(counts) for spec, counts in self.members.items() if counts}
        return out

    # --- changing it ------------------------------------------------------------------------
    def replace(self, parts: Mapping[ServicePortName, DesiredState | None]) -> Delta:
        """Swap in the new part of each named service port (None: it is gone)."""
        members_before: dict[tuple[SetSpec, str], bool] = {}
        bound_before: dict[str, bool] = {}
        delta = Delta()
        for name, new in parts.items():
            old = self.parts.pop(name, None)
            for part, step in ((old, -1), (new, 1)):
                if part is None:
                    continue
                for spec, members in part.ipsets.items():
                    counts = self.members.setdefault(spec, Counter())
                    for member in members:
                        members_before.setdefault((spec, member), member in counts)
                        _count(counts, member, step)
                for address in part.bound:
                    bound_before.setdefault(address, address in self.bound)
                    _count(self.bound, address, step)
                for key in part.servers:
                    delta.servers.add(key)
                    claimants = self.claims.setdefault(key, set())
                    if step > 0:
                        claimants.add(name)
                    else:
                        claimants.discard(name)
                    if not claimants:
                        del self.claims[key]
            if new is not None:
                self.parts[name] = new
        for (spec, member), was in members_before.items():
            now = member in self.members[spec]
            if now != was:
                target = delta.members_added if now else delta.members_deleted
                target.setdefault(spec, set()).add(member)
        for address, was in bound_before.items():
            now = address in self.bound
            if now != was:
                (delta.bound_added if now else delta.bound_deleted).add(address)
        return delta

    def reset(self, parts: Iterable[tuple[ServicePortName, DesiredState]]) -> None:
        """Forget everything, then hold ``parts`` (a full sync's rebuild)."""
        self.parts.clear()
        self.members.clear()
        self.bound.clear()
        self.claims.clear()
        for name, part in parts:  # no delta to track: counting only
            self.parts[name] = part
            for spec, members in part.ipsets.items():
                self.members.setdefault(spec, Counter()).update(members)
            self.bound.update(part.bound)
            for key in part.servers:
                self.claims.setdefault(key, set()).add(name)


def _count(counts: Counter[str], item: str, step: int) -> None:
    """Add ``step`` to ``item``'s count, dropping it at zero (so ``in`` means 'wanted')."""
    n = counts[item] + step
    if n:
        counts[item] = n
    else:
        del counts[item]
