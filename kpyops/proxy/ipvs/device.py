"""The ``kube-ipvs0`` dummy interface that holds every service address (pyroute2 IPRoute).

IPVS only sees packets addressed to the host, so each ClusterIP, external IP and load
balancer IP is bound here as a host address (/32 or /128). The link stays down: the
addresses are local, but the interface never answers ARP for them.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from kpyops.proxy.dataplane import DataplaneError

DEVICE_NAME = "kube-ipvs0"


def _prefixlen(address: str) -> int:
    return 128 if ipaddress.ip_address(address).version == 6 else 32


class IpvsDevice:
    """The dummy interface and the addresses bound on it.

    ``kind`` is ``dummy`` in production; tests on kernels without the dummy driver may
    use another link kind (e.g. ``bridge``): the address handling is the same.
    """

    def __init__(self, name: str = DEVICE_NAME, netns: str | None = None, kind: str = "dummy"):
        self.name = name
        self.netns = netns
        self.kind = kind

    def _ipr(self) -> IPRoute:
        return IPRoute(netns=self.netns) if self.netns else IPRoute()

    def _index(self, ipr: IPRoute) -> int | None:
        found = ipr.link_lookup(ifname=self.name)
        return found[0] if found else None

    def exists(self) -> bool:
        with self._ipr() as ipr:
            return self._index(ipr) is not None

    def ensure(self) -> bool:
        """Create the interface if missing; True if it was created."""
        with self._ipr() as ipr:
            if self._index(ipr) is not None:
                return False
            try:
                ipr.link("add", ifname=self.name, kind=self.kind)
            except NetlinkError as err:
                raise DataplaneError(
                    f"cannot create the {self.kind} interface {self.name}: {err} "
                    "(is the dummy kernel module available?)"
                ) from err
            return True

    def addresses(self) -> set[str]:
        """Addresses bound on the interface (empty if it does not exist)."""
        with self._ipr() as ipr:
            index = self._index(ipr)
            if index is None:
                return set()
            return {
                str(ipaddress.ip_address(a.get_attr("IFA_ADDRESS")))
                for a in ipr.addr("dump", index=index)
            }

    def reconcile(self, wanted: Iterable[str], family: int, unbind: bool = True) -> tuple[int, int]:
        """Bind missing addresses and (with ``unbind``) unbind the others of ``family``.

        Returns (bound, unbound). Addresses of the other family are left alone: each
        family has its own dataplane.
        """
        want = {str(ipaddress.ip_address(a)) for a in wanted}
        with self._ipr() as ipr:
            index = self._index(ipr)
            if index is None:
                raise DataplaneError(f"interface {self.name} does not exist")
            have = {
                str(ipaddress.ip_address(a.get_attr("IFA_ADDRESS")))
                for a in ipr.addr("dump", index=index)
                if a["family"] == (socket.AF_INET6 if family == 6 else socket.AF_INET)
            }
            for addr in sorted(want - have):
                ipr.addr("add", index=index, address=addr, prefixlen=_prefixlen(addr))
            stale = sorted(have - want) if unbind else []
            for addr in stale:
                ipr.addr("del", index=index, address=addr, prefixlen=_prefixlen(addr))
        return len(want - have), len(stale)

    def bind(self, addresses: Iterable[str]) -> int:
        """Bind these addresses, without listing the others (partial syncs); returns how many
        were new. One already bound is not an error."""
        return self._change("add", addresses, errno.EEXIST)

    def unbind(self, addresses: Iterable[str]) -> int:
        """Unbind these addresses; returns how many were bound. One not bound is not an error."""
        return self._change("del", addresses, errno.EADDRNOTAVAIL)

    def _change(self, command: str, addresses: Iterable[str], harmless: int) -> int:
        todo = sorted({str(ipaddress.ip_address(a)) for a in addresses})
        if not todo:
            return 0
        done = 0
        with self._ipr() as ipr:
            index = self._index(ipr)
            if index is None:
                raise DataplaneError(f"interface {self.name} does not exist")
            for addr in todo:
                try:
                    ipr.addr(command, index=index, address=addr, prefixlen=_prefixlen(addr))
                    done += 1
                except NetlinkError as err:
                    if err.code != harmless:
                        raise DataplaneError(f"{command} {addr} on {self.name}: {err}") from err
        return done

    def delete(self) -> None:
        """Remove the interface and with it every bound address; no-op if absent."""
        with self._ipr() as ipr:
            index = self._index(ipr)
            if index is not None:
                ipr.link("del", index=index)
