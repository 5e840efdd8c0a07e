"""Completion: turn a user's spec into the completed spec, with every default explicit.

Completion is pure (no I/O) and idempotent: completing a completed spec changes nothing.
It also runs the checks that need the whole spec at once (host names unique across
groups, DNS address inside the service range, enough hosts for etcd).
"""

from __future__ import annotations

import ipaddress
import zlib
from collections.abc import Iterator

from pydantic import ValidationError

from kpyops.artifacts.catalog import CNI, CONTAINERD, RUNC
from kpyops.clouds.capabilities import capabilities
from kpyops.spec.errors import SpecError
from kpyops.spec.model import (
    MAX_NODES,
    NODE_POD_PREFIX,
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


# Local clusters' networks are /24s of 10.213.0.0/16, from 10.213.1.0 to 10.213.250.0.
LOCAL_SUBNETS = 250


def local_subnets(name: str) -> Iterator[ipaddress.IPv4Network]:
    """Every /24 a local cluster's podman network may take, the one its name hashes to first
    (``create`` takes the first one no other network uses and writes it into the spec)."""
    first = zlib.crc32(name.encode()) % LOCAL_SUBNETS
    for i in range(LOCAL_SUBNETS):
        yield ipaddress.IPv4Network(f"10.213.{(first + i) % LOCAL_SUBNETS + 1}.0/24")


def local_subnet(name: str) -> ipaddress.IPv4Network:
    """A /24 for a local cluster's podman network, stable for its name."""
    return next(local_subnets(name))


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


# Local machines get addresses from the subnet's 10th on (the first ones are the gateway,
# the files repository and registry, and room for more).
LOCAL_FIRST_HOST = 10


def local_addresses(subnet: ipaddress.IPv4Network) -> range:
    """Offsets in the subnet of the addresses local machines may have, lowest first (up to,
    not including, the broadcast address): a range, whatever the subnet's size."""
    return range(LOCAL_FIRST_HOST, max(LOCAL_FIRST_HOST, subnet.num_addresses - 1))


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
    name = c.metadata.name
    problems: list[tuple[str, str]] = []

    # Local machines: a subnet and generated hosts with fixed addresses, so that
    # certificates and the inventory are known before a machine exists.
    if s.cloud == "local":
        s.local = s.local or Local()
        s.local.subnet = s.local.subnet or local_subnet(name)
        for label, cidr in s.networking.ranges():
            if s.local.subnet.overlaps(cidr):
                problems.append(("spec.local.subnet", f"{s.local.subnet} overlaps {label} {cidr}"))
        free = local_addresses(s.local.subnet)
        wanted = machines_to_place(c)
        if wanted > len(free):
            problems.append(("spec.local.subnet", f"{s.local.subnet} holds {len(free)} machines "
                             f"(addresses {s.local.subnet.network_address + LOCAL_FIRST_HOST} "
                             f"up) but the spec has {wanted}: use a larger subnet"))
        if problems:
            raise SpecError(problems=problems)
        addresses = (s.local.subnet.network_address + i for i in free)
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
                problems.append(("spec.controlPlane.hosts", "bare metal needs its hosts listed"))
        else:
            cp.hosts = [Host(name=f"{name}-cp-{i}", address=next(addresses)) for i in range(1, count + 1)]
    cp.count = len(cp.hosts) if cp.hosts else (cp.count or 1)
    if cp.count == 1 and cp.api_load_balancer.type == "local":
        cp.api_load_balancer.type = "none"
    if cp.api_load_balancer.type == "external" and not cp.api_load_balancer.address:
        problems.append(
            ("spec.controlPlane.apiLoadBalancer.address", "type external needs an address")
        )

    # Node groups
    if not s.node_groups:
        s.node_groups = [NodeGroup(name=DEFAULT_NODE_GROUP, count=2)]
    s.kubelet = merge_kubelet(KUBELET_DEFAULTS, s.kubelet)
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
                problems.append((f"spec.nodeGroups[{i}].hosts", "bare metal needs its hosts listed"))
        group.count = len(group.hosts) if group.hosts else group.count
        if s.aws is not None and group.instance_type is None:
            group.instance_type = s.aws.node_instance_type
        group.kubelet = merge_kubelet(s.kubelet, group.kubelet, f"spec.nodeGroups[{i}].kubelet")

    # Every machine needs a node range of the pod network, and Kubernetes a bounded size.
    machines = cp.count + sum(g.count or 0 for g in s.node_groups)
    if machines > MAX_NODES:
        problems.append(("spec.nodeGroups", f"{machines} machines: Kubernetes supports at most "
                         f"{MAX_NODES} nodes in a cluster"))
    pod = s.networking.pod_cidr
    room = 2 ** (NODE_POD_PREFIX - pod.prefixlen)
    if machines > room:
        problems.append(("spec.networking.podCIDR", f"{pod} holds {room} node ranges "
                         f"(/{NODE_POD_PREFIX}) but the cluster has {machines} machines: use a "
                         "larger range"))

    # etcd: on the control planes unless dedicated hosts are listed
    etcd = s.etcd
    pool = etcd.hosts or cp.hosts
    members = etcd.members or (len(etcd.hosts) if etcd.hosts else cp.count)
    if members % 2 == 0:
        problems.append((
            "spec.etcd.members",
            f"{members} etcd members is even: quorum needs an odd count (1, 3, 5 or 7)",
        ))
    elif pool and members > len(pool):
        problems.append((
            "spec.etcd.members",
            f"{members} members but only {len(pool)} hosts to place them on",
        ))
    elif etcd.hosts and len(etcd.hosts) != members:
        problems.append(("spec.etcd.hosts", f"{len(etcd.hosts)} hosts listed for {members} members"))
    else:
        etcd.members = members

    # DNS service address
    svc = s.networking.service_cidr
    if s.dns.cluster_dns is None:
        s.dns.cluster_dns = svc.network_address + 10
    elif s.dns.cluster_dns not in svc:
        problems.append(("spec.dns.clusterDNS", f"{s.dns.cluster_dns} is outside serviceCIDR {svc}"))

    # Artifacts: every binary named, with its version and source
    # A version has one field: etcd's is spec.etcd.version, Kubernetes' spec.kubernetesVersion;
    # an artifact item may name where the binary comes from, not another version of it.
    owners = {"{k8s}": ("spec.kubernetesVersion", s.kubernetes_version),
              "{etcd}": ("spec.etcd.version", etcd.version)}
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

    problems += host_problems(c)
    if problems:
        raise SpecError(problems=problems)
    return Cluster.model_validate(c.model_dump(by_alias=True))


def complete_aws(cluster: Cluster) -> None:
    """Defaults of --cloud aws. Machines are counted, not listed: the cloud names them."""
    s = cluster.spec
    if s.aws is None:
        raise SpecError("spec.aws", "cloud aws needs a region: spec.aws.region, or AWS_REGION "
                        "(or a profile's region) when the cluster is created")
    for path, _host in all_hosts(cluster):
        raise SpecError(path, "on aws machines are counted (count), not listed (hosts)")
    aws = s.aws
    aws.zones = aws.zones or [f"{aws.region}a"]
    if aws.cidr is None:
        aws.cidr = AWS_DEFAULT_CIDR
    overlaps = [("spec.aws.cidr", f"{aws.cidr} overlaps {label} {cidr}")
                for label, cidr in s.networking.ranges() if aws.cidr.overlaps(cidr)]
    if overlaps:
        raise SpecError(problems=overlaps)
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


def host_problems(cluster: Cluster) -> list[tuple[str, str]]:
    """Host names and addresses used twice, and addresses inside the pod or service ranges."""
    problems: list[tuple[str, str]] = []
    seen_names: dict[str, str] = {}
    seen_addresses: dict[str, str] = {}
    ranges = cluster.spec.networking.ranges()
    for path, host in all_hosts(cluster):
        if host.name in seen_names:
            problems.append((path, f"duplicate host name {host.name!r} (also in "
                             f"{seen_names[host.name]})"))
        seen_names.setdefault(host.name, path)
        addr = str(host.address)
        if addr in seen_addresses:
            problems.append((path, f"duplicate host address {addr} (also in "
                             f"{seen_addresses[addr]})"))
        seen_addresses.setdefault(addr, path)
        for label, cidr in ranges:
            if host.address in cidr:
                problems.append((path, f"host {host.name} address {addr} lies inside {label} "
                                 f"{cidr}"))
    return problems


def check_unique_hosts(cluster: Cluster) -> None:
    problems = host_problems(cluster)
    if problems:
        raise SpecError(problems=problems)
