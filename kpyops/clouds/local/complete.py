"""Completion of a --cloud local spec: the part of ``kpyops.spec.complete`` that only local
clusters need, next to the cloud that makes their machines. Pure (no I/O), like all of
completion; ``LocalCloud`` reads the same facts (subnets, the files repository's and
registry's addresses)."""

from __future__ import annotations

import ipaddress
import zlib
from collections.abc import Iterator

from kpyops.spec.errors import SpecError
from kpyops.spec.model import Cluster, Local

# Local clusters' files repository: the second address of their network, on this port.
LOCAL_FILES_PORT = 8080
# Where local hosts pull images: the registry beside the files repository.
LOCAL_REGISTRY_PORT = 5000
# Images the cluster pulls from this registry; local clusters mirror it to their own.
UPSTREAM_REGISTRY = "registry.k8s.io"
# Local clusters' networks are /24s of 10.213.0.0/16, from 10.213.1.0 to 10.213.250.0.
LOCAL_SUBNETS = 250
# Local machines get addresses from the subnet's 10th on (the first ones are the gateway,
# the files repository and registry, and room for more).
LOCAL_FIRST_HOST = 10


def local_files_url(subnet: ipaddress.IPv4Network) -> str:
    return f"http://{subnet.network_address + 2}:{LOCAL_FILES_PORT}"


def local_registry_url(subnet: ipaddress.IPv4Network) -> str:
    return f"http://{subnet.network_address + 2}:{LOCAL_REGISTRY_PORT}"


def local_subnets(name: str) -> Iterator[ipaddress.IPv4Network]:
    """Every /24 a local cluster's podman network may take, the one its name hashes to first
    (``create`` takes the first one no other network uses and writes it into the spec)."""
    first = zlib.crc32(name.encode()) % LOCAL_SUBNETS
    for i in range(LOCAL_SUBNETS):
        yield ipaddress.IPv4Network(f"10.213.{(first + i) % LOCAL_SUBNETS + 1}.0/24")


def local_subnet(name: str) -> ipaddress.IPv4Network:
    """A /24 for a local cluster's podman network, stable for its name."""
    return next(local_subnets(name))


def local_addresses(subnet: ipaddress.IPv4Network) -> range:
    """Offsets in the subnet of the addresses local machines may have, lowest first (up to,
    not including, the broadcast address): a range, whatever the subnet's size."""
    return range(LOCAL_FIRST_HOST, max(LOCAL_FIRST_HOST, subnet.num_addresses - 1))


def complete_local(cluster: Cluster, wanted: int) -> Iterator[ipaddress.IPv4Address]:
    """Defaults of --cloud local (changed in place); returns the fixed addresses of the
    ``wanted`` machines completion names, so that certificates and the inventory are known
    before a machine exists."""
    s = cluster.spec
    s.local = s.local or Local()
    s.local.subnet = s.local.subnet or local_subnet(cluster.metadata.name)
    problems = [("spec.local.subnet", f"{s.local.subnet} overlaps {label} {cidr}")
                for label, cidr in s.networking.ranges() if s.local.subnet.overlaps(cidr)]
    free = local_addresses(s.local.subnet)
    if wanted > len(free):
        problems.append(("spec.local.subnet", f"{s.local.subnet} holds {len(free)} machines "
                         f"(addresses {s.local.subnet.network_address + LOCAL_FIRST_HOST} "
                         f"up) but the spec has {wanted}: use a larger subnet"))
    if problems:
        raise SpecError(problems=problems)
    # No release server is reachable from local machines: binaries come from the cluster's
    # own files repository and images from the registry beside it, both filled by
    # `kpyops artifacts` from Go modules (the air-gapped path).
    if s.artifacts.files_repository is None:
        s.artifacts.files_repository = local_files_url(s.local.subnet)
    mirrors = s.container_runtime.registry_mirrors
    if UPSTREAM_REGISTRY not in mirrors:
        s.container_runtime.registry_mirrors = {
            **mirrors, UPSTREAM_REGISTRY: [local_registry_url(s.local.subnet)]
        }
    # The test hosts share this machine's kernel, whose cgroups are v1 (hybrid): kubelet
    # 1.35+ refuses that unless told not to. Only local clusters say so.
    if s.kubelet.fail_cgroup_v1 is None:
        s.kubelet.fail_cgroup_v1 = False
    # Containers on this machine cannot lower an OOM score (no CAP_SYS_RESOURCE).
    if "restrict_oom_score_adj" not in s.container_runtime.model_fields_set:
        s.container_runtime.restrict_oom_score_adj = True
    # ... and kpyops leaves that shared kernel's own tunables alone.
    if s.kubelet.protect_kernel_defaults is None:
        s.kubelet.protect_kernel_defaults = False
    # Local machines share this machine's kernel, which a container cannot load IPVS into;
    # the default proxy mode (nftables) needs only nf_tables, which it has.
    return (s.local.subnet.network_address + i for i in free)
