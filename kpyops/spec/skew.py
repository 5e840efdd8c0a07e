"""Kubernetes version changes a cluster may take, and the skew rules an upgrade keeps.

Upstream's version skew policy: a kubelet may be up to three minors older than the API
server, never newer; control planes move one minor at a time (no skipped minor: the API
server's storage migrations and feature gates assume it). So an upgrade goes up by at most
one minor, never down, and upgrades the control planes before any kubelet.
"""

from __future__ import annotations

from kpyops.spec.types import version_tuple

RULES = (
    "one minor release at a time, never down (no skipped minor: API storage and feature gates assume it)",
    "control planes first, one at a time, validated in between: no kubelet newer than its API server",
    "an etcd snapshot before the first host changes",
    "nodes drained in batches, validated in between",
)


def version_problems(old: str, new: str) -> list[tuple[str, str]]:
    """(field, why) when going from Kubernetes ``old`` to ``new`` breaks the rules above."""
    o, n = version_tuple(old), version_tuple(new)
    if n < o:
        return [("spec.kubernetesVersion", f"{old} -> {new} goes down: downgrades are not supported")]
    if n[:2] > (o[0], o[1] + 1):
        return [("spec.kubernetesVersion", f"{old} -> {new} skips a minor release: upgrade to "
                 f"{o[0]}.{o[1] + 1} first")]
    return []
