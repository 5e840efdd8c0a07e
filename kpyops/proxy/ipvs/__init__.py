"""The IPVS dataplane: kube-ipvs0, IPVS virtual/real servers over netlink, ipsets, iptables.

Layers, each usable and testable alone:

- :mod:`.netlink`: virtual and real servers as IPVS generic-netlink messages (pyroute2);
  :mod:`.fake` answers them from memory at the byte level for tests.
- :mod:`.device`: the ``kube-ipvs0`` dummy interface and its addresses.
- :mod:`.ipset`: kube-proxy's ipsets, reconciled in one ``ipset restore`` batch.
- :mod:`.rules`: the constant-size iptables chains matching those sets.
- :mod:`.state`: services and endpoints -> desired state (pure).
- :mod:`.aggregate`: that state kept per service port, with a reference-counted union, so
  partial syncs apply only the difference the changed service ports make.
- :mod:`.capability`: does this kernel support IPVS mode, and if not, why.
- :mod:`.dataplane`: :class:`IpvsDataplane`, the ``Dataplane`` the sync loop drives.
"""

from kpyops.proxy.ipvs.capability import IpvsUnavailable, check_ipvs_support, require_ipvs
from kpyops.proxy.ipvs.dataplane import IpvsDataplane

__all__ = ["IpvsDataplane", "IpvsUnavailable", "check_ipvs_support", "require_ipvs"]
