"""The iptables dataplane: kube-proxy's iptables mode, applied with iptables-restore."""

from kpyops.proxy.iptables.dataplane import IptablesDataplane

__all__ = ["IptablesDataplane"]
