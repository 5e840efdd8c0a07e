"""Completion: turn a user's spec into the completed spec, with every default explicit.

Completion is pure (no I/O) and idempotent: completing a completed spec changes nothing.
It also runs the checks that need the whole spec at once (host names unique across
groups, DNS address inside the service range, enough hosts for etcd).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator

from pydantic import ValidationError

from kpyops.artifacts.catalog import CNI, CONTAINERD, RUNC
from kpyops.clouds.aws.complete import complete_aws
from kpyops.clouds.capabilities import capabilities
from kpyops.clouds.local.complete import complete_local
from kpyops.spec.errors import SpecError
from kpyops.spec.hosts import host_problems
from kpyops.spec.model import (
    MAX_NODES,
    NODE_POD_PREFIX,
    Artifact,
    Cluster,
    Host,
    KubeletSettings,
    NodeGroup,
)

# Each cloud's own completion, next to its cloud: it fills that cloud's defaults in place and
# returns the addresses of the machines completion names (None: the spec lists them, or the
# cloud names them at apply). Clouds without one complete nothing of their own.
CloudCompleter = Callable[[Cluster, int], Iterator[ipaddress.IPv4Address] | None]
CLOUD_COMPLETERS: dict[str, CloudCompleter] = {"local": complete_local, "aws": complete_aws}
DEFAULT_NODE_GROUP = "node"
Problems = list[tuple[str, str]]
# Where each binary hosts install comes from when the spec names no URL. {version} is
# substituted; a missing sha256 means the published "<url>.sha256" file is fetched and checked
# instead. The control plane runs from images (static pods): its binaries are not listed.
DEFAULT_ARTIFACTS: dict[str, tuple[str, str]] = {
    "etcd": (
        "{etcd}",
        "https://github.com/etcd-io/etcd/releases/download/v{version}/"
        "etcd-v{version}-linux-amd64.tar.gz",
    ),
    "kubelet": ("{k8s}", "https://dl.k8s.io/release/v{version}/bin/linux/amd64/kubelet"),
    "kubectl": ("{k8s}", "https://dl.k8s.io/release/v{version}/bin/linux/amd64/kubectl"),
    "containerd": (
        CONTAINERD.version(),
        "https://github.com/containerd/containerd/releases/download/v{version}/"
        "containerd-{version}-linux-amd64.tar.gz",
    ),
    "runc": (RUNC.version(), "https://github.com/opencontainers/runc/releases/download/v{version}/runc.amd64"),
    "cni-plugins": (
        CNI.version(),
        "https://github.com/containernetworking/plugins/releases/download/v{version}/"
        "cni-plugins-linux-amd64-v{version}.tgz",
    ),
}
KUBELET_DEFAULTS = KubeletSettings(
    cpu_manager_policy="none",
    cpu_manager_reconcile_period="10s",
    topology_manager_policy="none",
    kube_reserved={"cpu": "100m", "memory": "256Mi"},
    system_reserved={"cpu": "100m", "memory": "256Mi"},
    eviction_hard={
        "memory.available": "100Mi",
        "nodefs.available": "10%",
        "nodefs.inodesFree": "5%",
        "imagefs.available": "15%",
    },
    eviction_soft={},
    eviction_soft_grace_period={},
    max_pods=110,
)


def merge_kubelet(base: KubeletSettings, override: KubeletSettings, path: str = "spec.kubelet"
                  ) -> KubeletSettings:
    """``override`` over ``base``; the merged settings are checked as a whole (e.g. a static
    CPU policy needs CPUs reserved), their problems named under ``path``."""
    data = base.model_dump(exclude_none=True)
    data.update(override.model_dump(exclude_none=True))
    try:
        return KubeletSettings.model_validate(data)
    except ValidationError as err:
        raise SpecError.from_validation_error(err, prefix=path) from None


def machines_to_place(cluster: Cluster) -> int:
    """How many machines completion names and addresses (those not listed as hosts)."""
    s = cluster.spec
    cp = s.control_plane
    n = 0 if cp.hosts else (cp.count or 1)
    groups = s.node_groups or [NodeGroup(name=DEFAULT_NODE_GROUP, count=2)]
    return n + sum(g.count if g.count is not None else 1 for g in groups if not g.hosts)


def complete(cluster: Cluster) -> Cluster:
    """Return a new Cluster with every default filled in; a SpecError names every problem
    found (the whole-spec checks run after the defaults are in)."""
    try:
        return _complete(cluster)
    except ValidationError as err:  # the completed spec as a whole, validated once more
        raise SpecError.from_validation_error(err) from None


def _complete(cluster: Cluster) -> Cluster:
    c = cluster.model_copy(deep=True)
    s = c.spec
    cloud = CLOUD_COMPLETERS.get(s.cloud)
    addresses = cloud(c, machines_to_place(c)) if cloud else None
    problems = complete_control_plane(c, addresses)
    problems += complete_node_groups(c, addresses)
    problems += check_sizes(c)
    problems += complete_etcd(c)
    problems += complete_dns(c)
    problems += complete_artifacts(c)
    problems += host_problems(c)
    if problems:
        raise SpecError(problems=problems)
    return Cluster.model_validate(c.model_dump(by_alias=True))



def complete_control_plane(c: Cluster, addresses: Iterator[ipaddress.IPv4Address] | None) -> Problems:
    """Control-plane hosts (named and addressed when the cloud gives addresses), count, and
    the API load balancer (none for a single control plane)."""
    problems: Problems = []
    cp = c.spec.control_plane
    if not cp.hosts:
        count = cp.count or 1
        if addresses is not None:
            cp.hosts = [Host(name=f"{c.name}-cp-{i}", address=next(addresses)) for i in range(1, count + 1)]
        elif capabilities(c.spec.cloud).lists_hosts:
            problems.append(("spec.controlPlane.hosts", f"cloud {c.spec.cloud} needs its hosts listed"))
    cp.count = len(cp.hosts) if cp.hosts else (cp.count or 1)
    if cp.count == 1 and cp.api_load_balancer.type == "local":
        cp.api_load_balancer.type = "none"
    if cp.api_load_balancer.type == "external" and not cp.api_load_balancer.address:
        problems.append(("spec.controlPlane.apiLoadBalancer.address", "type external needs an address"))
    return problems


def complete_node_groups(c: Cluster, addresses: Iterator[ipaddress.IPv4Address] | None) -> Problems:
    """The default node group when none is named; each group's hosts, count, instance type
    and kubelet settings (the cluster's merged with the group's)."""
    problems: Problems = []
    s = c.spec
    if not s.node_groups:
        s.node_groups = [NodeGroup(name=DEFAULT_NODE_GROUP, count=2)]
    s.kubelet = merge_kubelet(KUBELET_DEFAULTS, s.kubelet)
    for i, group in enumerate(s.node_groups):
        if not group.hosts:
            if group.count is None:
                group.count = 1
            if addresses is not None:
                group.hosts = [Host(name=f"{c.name}-{group.name}-{j}", address=next(addresses))
                               for j in range(1, group.count + 1)]
            elif capabilities(s.cloud).lists_hosts and group.count:
                problems.append((f"spec.nodeGroups[{i}].hosts", f"cloud {s.cloud} needs its hosts listed"))
        group.count = len(group.hosts) if group.hosts else group.count
        if s.aws is not None and group.instance_type is None:
            group.instance_type = s.aws.node_instance_type
        group.kubelet = merge_kubelet(s.kubelet, group.kubelet, f"spec.nodeGroups[{i}].kubelet")
    return problems


def check_sizes(c: Cluster) -> Problems:
    """Every machine needs a node range of the pod network, and Kubernetes a bounded size."""
    problems: Problems = []
    s = c.spec
    machines = s.control_plane.count + sum(g.count or 0 for g in s.node_groups)
    if machines > MAX_NODES:
        problems.append(("spec.nodeGroups", f"{machines} machines: Kubernetes supports at most "
                         f"{MAX_NODES} nodes in a cluster"))
    pod = s.networking.pod_cidr
    room = 2 ** (NODE_POD_PREFIX - pod.prefixlen)
    if machines > room:
        problems.append(("spec.networking.podCIDR", f"{pod} holds {room} node ranges "
                         f"(/{NODE_POD_PREFIX}) but the cluster has {machines} machines: use a "
                         "larger range"))
    return problems


def complete_etcd(c: Cluster) -> Problems:
    """etcd runs on the control planes unless dedicated hosts are listed; an odd member count
    that its hosts can hold."""
    s = c.spec
    etcd = s.etcd
    pool = etcd.hosts or s.control_plane.hosts
    members = etcd.members or (len(etcd.hosts) if etcd.hosts else s.control_plane.count)
    if members % 2 == 0:
        return [("spec.etcd.members", f"{members} etcd members is even: quorum needs an odd count "
                 "(1, 3, 5 or 7)")]
    if pool and members > len(pool):
        return [("spec.etcd.members", f"{members} members but only {len(pool)} hosts to place them on")]
    if etcd.hosts and len(etcd.hosts) != members:
        return [("spec.etcd.hosts", f"{len(etcd.hosts)} hosts listed for {members} members")]
    etcd.members = members
    return []


def complete_dns(c: Cluster) -> Problems:
    """The cluster DNS service address: the service range's tenth unless given, inside it."""
    s = c.spec
    svc = s.networking.service_cidr
    if s.dns.cluster_dns is None:
        s.dns.cluster_dns = svc.network_address + 10
    elif s.dns.cluster_dns not in svc:
        return [("spec.dns.clusterDNS", f"{s.dns.cluster_dns} is outside serviceCIDR {svc}")]
    return []


def complete_artifacts(c: Cluster) -> Problems:
    """Every binary named, with its version and source. A version has one field: etcd's is
    spec.etcd.version, Kubernetes' spec.kubernetesVersion; an artifact item may name where the
    binary comes from, not another version of it. A cloud that serves every binary from the
    cluster's files repository gets no download URLs."""
    problems: Problems = []
    s = c.spec
    owners = {"{k8s}": ("spec.kubernetesVersion", s.kubernetes_version),
              "{etcd}": ("spec.etcd.version", s.etcd.version)}
    for art, (version, _url) in DEFAULT_ARTIFACTS.items():
        item = s.artifacts.items.get(art)
        if version in owners and item is not None and item.version != owners[version][1]:
            field, value = owners[version]
            problems.append((f"spec.artifacts.items.{art}.version",
                             f"is {item.version} but {field} is {value}: set the version there only"))
    for art, (version, url) in DEFAULT_ARTIFACTS.items():
        if art not in s.artifacts.items:
            v = owners.get(version, (None, version))[1]
            s.artifacts.items[art] = Artifact(
                version=v, url=None if capabilities(s.cloud).serves_artifacts else url)
    return problems
