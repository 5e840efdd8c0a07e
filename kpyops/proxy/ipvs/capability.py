"""Can this kernel run the IPVS dataplane? Checked at start, with a message that says why not.

IPVS mode needs: the IPVS generic netlink family (module ``ip_vs``), the scheduler's module
(``ip_vs_<scheduler>``), dummy links (module ``dummy``, for ``kube-ipvs0``) and the ``ipset``
tool. kube-proxy checks the scheduler the same way: it creates and deletes a throwaway
virtual server (198.51.100.0:20000/TCP, TEST-NET-2).
"""

from __future__ import annotations

import errno
import shutil
from dataclasses import dataclass, field

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from kpyops.proxy.ipvs.netlink import IpvsClient, VirtualServer

PROBE_LINK = "kpyops-probe0"
PROBE_SERVER = VirtualServer("198.51.100.0", "TCP", 20000)
MODULES_HINT = (
    "ip_vs, ip_vs_rr, ip_vs_wrr, ip_vs_sh, nf_conntrack (the kernel_modules role loads them)"
)


class IpvsUnavailable(RuntimeError):
    """IPVS mode cannot run on this node; the message lists every reason and the fix."""


@dataclass
class IpvsSupport:
    ipvs_netlink: bool
    dummy_links: bool
    ipset_tool: bool
    scheduler_ok: bool | None = None  # None: not checked (no IPVS)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def ipvs_family_present(netns: str | None = None) -> bool:
    """True if the kernel knows the IPVS generic netlink family."""
    from pyroute2 import IPVS

    try:
        sock = IPVS(netns=netns) if netns else IPVS()
    except NetlinkError as err:
        if err.code == errno.ENOENT:
            return False
        raise
    sock.close()
    return True


def dummy_links_supported(netns: str | None = None, existing: str = "kube-ipvs0") -> bool:
    """True if ``existing`` is already a dummy link, or a probe dummy link can be created."""
    with IPRoute(netns=netns) if netns else IPRoute() as ipr:
        found = ipr.link_lookup(ifname=existing)
        if found:
            link = ipr.link("get", index=found[0])[0]
            info = link.get_attr("IFLA_LINKINFO")
            return info is not None and info.get_attr("IFLA_INFO_KIND") == "dummy"
        try:
            ipr.link("add", ifname=PROBE_LINK, kind="dummy")
        except NetlinkError:
            return False
        ipr.link("del", index=ipr.link_lookup(ifname=PROBE_LINK)[0])
        return True


def scheduler_works(client: IpvsClient, scheduler: str) -> bool:
    """Create and delete a throwaway virtual server with ``scheduler``."""
    probe = VirtualServer(PROBE_SERVER.address, "TCP", PROBE_SERVER.port, scheduler)
    try:
        client.add_virtual_server(probe)
    except NetlinkError as err:
        if err.code != errno.EEXIST:
            return False
    client.delete_virtual_server(probe)
    return True


def check_ipvs_support(
    scheduler: str = "rr",
    netns: str | None = None,
    client: IpvsClient | None = None,
) -> IpvsSupport:
    """Probe the kernel; every missing piece becomes one line of ``problems``."""
    has_ipvs = ipvs_family_present(netns) if client is None else True
    support = IpvsSupport(
        ipvs_netlink=has_ipvs,
        dummy_links=dummy_links_supported(netns),
        ipset_tool=shutil.which("ipset") is not None,
    )
    if not support.ipvs_netlink:
        support.problems.append(
            'the kernel has no IPVS (generic netlink family "IPVS" not found): '
            f"load the modules {MODULES_HINT}"
        )
    else:
        if client is None:
            from kpyops.proxy.ipvs.netlink import KernelIpvsTransport

            client = IpvsClient(KernelIpvsTransport())
        support.scheduler_ok = scheduler_works(client, scheduler)
        if not support.scheduler_ok:
            support.problems.append(
                f"the IPVS scheduler {scheduler!r} is not available: load the module ip_vs_{scheduler}"
            )
    if not support.dummy_links:
        support.problems.append(
            "the kernel cannot create dummy interfaces (needed for kube-ipvs0): "
            "load the module dummy"
        )
    if not support.ipset_tool:
        support.problems.append("the ipset tool is not installed: install the package ipset")
    return support


def require_ipvs(scheduler: str = "rr", netns: str | None = None) -> None:
    """Raise IpvsUnavailable, naming every missing piece, unless IPVS mode can run."""
    support = check_ipvs_support(scheduler, netns)
    if not support.ok:
        lines = "\n".join(f"  - {p}" for p in support.problems)
        raise IpvsUnavailable(
            f"IPVS mode cannot run on this node:\n{lines}\n"
            "Fix the above, or set mode: nftables (or iptables) in the KubeProxyConfiguration."
        )
