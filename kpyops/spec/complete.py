"""Completion: turn a user's spec into the completed spec, with every default explicit.

Completion is pure (no I/O) and idempotent: completing a completed spec changes nothing.
It also runs the checks that need the whole spec at once (host names unique across
groups, DNS address inside the service range, enough hosts for etcd).
"""

from __future__ import annotations

import ipaddress
import zlib

from kpyops.artifacts.catalog import CNI, CONTAINERD, RUNC
from kpyops.spec.errors import SpecError
from kpyops.spec.model import (
    Artifact,
    Cluster,
    Host,
    KubeletSettings,
    Local,
    NodeGroup,
)

AWS_DEFAULT_CIDR = ipaddress.IPv4Network("172.20.0.0/16")  # kops' default VPC range
DEFAULT_NODE_GROUP = "node"
# Where each binary comes from when the spec names no URL. {version} is substituted; a
# missing sha256 means the published "<url>.sha256" file is fetched and checked instead.
DEFAULT_ARTIFACTS: dict[str, tuple[str, str]] = {
    "etcd": (
        "{etcd}",
        "https://github.com/etcd-io/etcd/releases/download/v{version}/"
        "etcd-v{version}-linux-amd64.tar.gz",
    ),
    "kubelet": ("{k8s}", "https://dl.k8s.io/release/v{version}/bin/linux/amd64/kubelet"),
    "kubectl": ("{k8s}", "https://dl.k8s.io/release/v{version}/bin/linux/amd64/kubectl"),
    "kube-apiserver": (
        "{k8s}",
        "https://dl.k8s.io/release/v{version}/bin/linux/amd64/kube-apiserver",
    ),
    "kube-controller-manager": (
        "{k8s}",
        "https://dl.k8s.io/release/v{version}/bin/linux/amd64/kube-controller-manager",
    ),
    "kube-scheduler": (
        "{k8s}",
        "https://dl.k8s.io/release/v{version}/bin/linux/amd64/kube-scheduler",
    ),
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


# Local clusters' files repository: the second address of their network, on this port.
LOCAL_FILES_PORT = 8080
# Where local hosts pull images: the registry beside the files repository.
LOCAL_REGISTRY_PORT = 5000
# Images the cluster pulls from this registry; local clusters mirror it to their own.
UPSTREAM_REGISTRY = "registry.k8s.io"


def local_files_url(subnet: ipaddress.IPv4Network) -> str:
    return f"http://{subnet.network_address + 2}:{LOCAL_FILES_PORT}"


def local_registry_url(subnet: ipaddress.IPv4Network) -> str:
    return f"http://{subnet.network_address + 2}:{LOCAL_REGISTRY_PORT}"


def local_subnet(name: str) -> ipaddress.IPv4Network:
    """A /24 for a local cluster's podman network, stable for its name."""
    return ipaddress.IPv4Network(f"10.213.{zlib.crc32(name.encode()) % 250 + 1}.0/24")


def merge_kubelet(base: KubeletSettings, override: KubeletSettings) -> KubeletSettings:
    data = base.model_dump(exclude_none=True)
    data.update(override.model_dump(exclude_none=True))
    return KubeletSettings.model_validate(data)


def complete(cluster: Cluster) -> Cluster:
    """Return a new Cluster with every default filled in."""
    c = cluster.model_copy(deep=True)
    s = c.spec
    name = c.metadata.name

    # Local machines: a subnet and generated hosts with fixed addresses, so that
    # certificates and the inventory are known before a machine exists.
    if s.cloud == "local":
        s.local = s.local or Local()
        s.local.subnet = s.local.subnet or local_subnet(name)
        for cidr, label in ((s.networking.pod_cidr, "podCIDR"), (s.networking.service_cidr, "serviceCIDR")):
            if s.local.subnet.overlaps(cidr):
                raise SpecError("spec.local.subnet", f"{s.local.subnet} overlaps {label} {cidr}")
        addresses = iter(list(s.local.subnet.hosts())[9:])
        # No release server is reachable from local machines: binaries come from the
        # cluster's own files repository and images from the registry beside it, both
        # filled by `kpyops artifacts` from Go modules (the air-gapped path).
        if s.artifacts.files_repository is None:
            s.artifacts.files_repository = local_files_url(s.local.subnet)
        mirrors = s.container_runtime.registry_mirrors
        if UPSTREAM_REGISTRY not in mirrors:
            s.container_runtime.registry_mirrors = {
                **mirrors, UPSTREAM_REGISTRY: [local_registry_url(s.local.subnet)]
            }
        # The test hosts share this machine's kernel, whose cgroups are v1 (hybrid):
        # kubelet 1.35+ refuses that unless told not to. Only local clusters say so.
        if s.kubelet.fail_cgroup_v1 is None:
            s.kubelet.fail_cgroup_v1 = False
        # Containers on this machine cannot lower an OOM score (no CAP_SYS_RESOURCE).
        if "restrict_oom_score_adj" not in s.container_runtime.model_fields_set:
            s.container_runtime.restrict_oom_score_adj = True
        # ... and kpyops leaves that shared kernel's own tunables alone.
        if s.kubelet.protect_kernel_defaults is None:
            s.kubelet.protect_kernel_defaults = False
        # Local machines share this machine's kernel, which a container cannot load IPVS
        # into: the proxy runs in iptables mode unless the spec asks otherwise.
        if "mode" not in s.kube_proxy.model_fields_set:
            s.kube_proxy.mode = "iptables"
    else:
        addresses = None
    if s.cloud == "aws":
        complete_aws(c)

    # Control plane
    cp = s.control_plane
    if not cp.hosts:
        count = cp.count or 1
        if addresses is None:
            if s.cloud == "baremetal":
                raise SpecError("spec.controlPlane.hosts", "bare metal needs its hosts listed")
        else:
            cp.hosts = [Host(name=f"{name}-cp-{i}", address=next(addresses)) for i in range(1, count + 1)]
    cp.count = len(cp.hosts) if cp.hosts else (cp.count or 1)
    if cp.count == 1 and cp.api_load_balancer.type == "local":
        cp.api_load_balancer.type = "none"
    if cp.api_load_balancer.type == "external" and not cp.api_load_balancer.address:
        raise SpecError(
            "spec.controlPlane.apiLoadBalancer.address", "type external needs an address"
        )

    # Node groups
    if not s.node_groups:
        s.node_groups = [NodeGroup(name=DEFAULT_NODE_GROUP, count=2)]
    for i, group in enumerate(s.node_groups):
        if not group.hosts:
            if group.count is None:
                group.count = 1
            if addresses is not None:
                group.hosts = [
                    Host(name=f"{name}-{group.name}-{j}", address=next(addresses))
                    for j in range(1, group.count + 1)
                ]
            elif s.cloud == "baremetal" and group.count:
                raise SpecError(f"spec.nodeGroups[{i}].hosts", "bare metal needs its hosts listed")
        group.count = len(group.hosts) if group.hosts else group.count
        if s.aws is not None and group.instance_type is None:
            group.instance_type = s.aws.node_instance_type
        group.kubelet = merge_kubelet(merge_kubelet(KUBELET_DEFAULTS, s.kubelet), group.kubelet)
    s.kubelet = merge_kubelet(KUBELET_DEFAULTS, s.kubelet)

    # etcd: on the control planes unless dedicated hosts are listed
    etcd = s.etcd
    pool = etcd.hosts or cp.hosts
    members = etcd.members or (len(etcd.hosts) if etcd.hosts else cp.count)
    if members % 2 == 0:
        raise SpecError(
            "spec.etcd.members",
            f"{members} etcd members is even: quorum needs an odd count (1, 3, 5 or 7)",
        )
    if pool and members > len(pool):
        raise SpecError(
            "spec.etcd.members",
            f"{members} members but only {len(pool)} hosts to place them on",
        )
    etcd.members = members
    if etcd.hosts and len(etcd.hosts) != members:
        raise SpecError("spec.etcd.hosts", f"{len(etcd.hosts)} hosts listed for {members} members")

    # DNS service address
    svc = s.networking.service_cidr
    if s.dns.cluster_dns is None:
        s.dns.cluster_dns = svc.network_address + 10
    elif s.dns.cluster_dns not in svc:
        raise SpecError("spec.dns.clusterDNS", f"{s.dns.cluster_dns} is outside serviceCIDR {svc}")

    # Artifacts: every binary named, with its version and source
    for art, (version, url) in DEFAULT_ARTIFACTS.items():
        if art not in s.artifacts.items:
            v = {"{k8s}": s.kubernetes_version, "{etcd}": etcd.version}.get(version, version)
            s.artifacts.items[art] = Artifact(version=v, url=None if s.cloud == "local" else url)

    check_unique_hosts(c)
    return Cluster.model_validate(c.model_dump(by_alias=True))


def complete_aws(cluster: Cluster) -> None:
    """Defaults of --cloud aws. Machines are counted, not listed: the cloud names them."""
    s = cluster.spec
    if s.aws is None:
        raise SpecError("spec.aws", "cloud aws needs spec.aws with at least a region")
    for path, _host in all_hosts(cluster):
        raise SpecError(path, "on aws machines are counted (count), not listed (hosts)")
    aws = s.aws
    aws.zones = aws.zones or [f"{aws.region}a"]
    if aws.cidr is None:
        aws.cidr = AWS_DEFAULT_CIDR
    for cidr, label in ((s.networking.pod_cidr, "podCIDR"), (s.networking.service_cidr, "serviceCIDR")):
        if aws.cidr.overlaps(cidr):
            raise SpecError("spec.aws.cidr", f"{aws.cidr} overlaps {label} {cidr}")
    if aws.dns is not None:
        aws.dns.record = aws.dns.record or f"api.{cluster.metadata.name}.{aws.dns.zone.rstrip('.')}"
        # The record is known before anything exists; without one the API address is the
        # load balancer's name, known after apply (AwsCloud.api_endpoint).
        s.control_plane.api_load_balancer.type = "external"
        s.control_plane.api_load_balancer.address = aws.dns.record
    if s.ssh.user == "root":  # the spec default; cloud images log in as their own user
        s.ssh.user = aws.ssh_user


def all_hosts(cluster: Cluster) -> list[tuple[str, Host]]:
    """Every host with the spec path of the list it stands in."""
    s = cluster.spec
    out = [("spec.controlPlane.hosts", h) for h in s.control_plane.hosts]
    out += [("spec.etcd.hosts", h) for h in s.etcd.hosts]
    for i, g in enumerate(s.node_groups):
        out += [(f"spec.nodeGroups[{i}].hosts", h) for h in g.hosts]
    return out


def check_unique_hosts(cluster: Cluster) -> None:
    seen_names: dict[str, str] = {}
    seen_addresses: dict[str, str] = {}
    for path, host in all_hosts(cluster):
        if host.name in seen_names:
            raise SpecError(path, f"duplicate host name {host.name!r} (also in {seen_names[host.name]})")
        seen_names[host.name] = path
        addr = str(host.address)
        if addr in seen_addresses:
            raise SpecError(path, f"duplicate host address {addr} (also in {seen_addresses[addr]})")
        seen_addresses[addr] = path
        for cidr, label in (
            (cluster.spec.networking.pod_cidr, "podCIDR"),
            (cluster.spec.networking.service_cidr, "serviceCIDR"),
        ):
            if host.address in cidr:
                raise SpecError(path, f"host {host.name} address {addr} lies inside {label} {cidr}")
