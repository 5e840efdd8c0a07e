"""The nftables dataplane: kube-proxy's nftables mode, applied with ``nft -f``."""

from kpyops.proxy.nftables.dataplane import NftablesDataplane

__all__ = ["NftablesDataplane"]
