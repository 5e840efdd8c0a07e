"""The cluster spec: one typed model, the single source of defaults and validation.

A user's spec may leave most fields out; ``kpyops.spec.complete`` fills every default and
returns the same model with nothing left implicit (``get cluster --full`` shows it).
Field names are camelCase on the wire, like Kubernetes objects.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from kpyops.artifacts.catalog import COREDNS, ETCD, KUBERNETES, PAUSE
from kpyops.proxy.config import DEFAULT_MODE as PROXY_DEFAULT_MODE
from kpyops.proxy.config import IPVS_SCHEDULERS
from kpyops.proxy.config import SUPPORTED_MODES as PROXY_MODES
from kpyops.spec.errors import describe_pattern, one_line
from kpyops.spec.names import (
    CLUSTER_NAME_MAX,
    DNS_LABEL,
    HOST_NAME_MAX,
    NODE_GROUP_NAME_MAX,
    RESERVED_NODE_GROUP_NAMES,
)
from kpyops.spec.types import (
    Count,
    Duration,
    Flag,
    IPAddr,
    IPNet,
    IPv4Addr,
    IPv4Net,
    IPv6Net,
    Port,
    check_cpu_list,
    check_reserved,
    check_signal,
    check_thresholds,
    reserved_cpu,
    version_tuple,
)

API_VERSION = "kpyops.io/v1alpha1"
KIND = "Cluster"


# Kubernetes releases kpyops supports: from the first, up to (not including) the second.
SUPPORTED_KUBERNETES = ("1.33.0", "1.38.0")
# kube-controller-manager gives each node a /24 of the pod range (--node-cidr-mask-size),
# and cuts at most 2^16 of them from it; kube-apiserver's service range has at most 20
# host bits (a /12 for IPv4, a /108 for IPv6).
NODE_POD_PREFIX = 24
NODE_POD_PREFIX_V6 = 64
MAX_SERVICE_HOST_BITS = 20
MAX_NODES_PER_GROUP = 500
MAX_NODES = 5000  # Kubernetes' documented largest cluster
GIB = 1024**3

describe_pattern(DNS_LABEL, "must be a DNS label: lowercase letters, digits and '-', starting "
                 "and ending with a letter or digit")
VERSION = describe_pattern(r"^\d{1,4}\.\d{1,4}\.\d{1,4}$", "must be a version such as 3.6.16")
K8S_VERSION = describe_pattern(r"^1\.\d{1,4}\.\d{1,4}$", "must be a version such as 1.35.4")
DOMAIN = describe_pattern(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
                          "must be a DNS domain such as cluster.local")
SHA256 = describe_pattern(r"^[0-9a-f]{64}$", "must be 64 lowercase hexadecimal digits")
INSTANCE_TYPE = describe_pattern(r"^[a-z0-9-]+\.[a-z0-9]+$",
                                 "must be an instance type such as t3.medium")


class Model(BaseModel):
    """Base for every spec object: camelCase aliases, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=True,
    )


class Host(Model):
    """One machine the cluster runs on."""

    name: str = Field(pattern=DNS_LABEL, max_length=HOST_NAME_MAX, description="Host name (DNS label)")
    address: IPAddr = Field(description="Address the cluster uses to reach the host")
    ssh_address: str | None = Field(
        default=None, description="Address Ansible connects to, when not `address`"
    )


class DualStack(Model):
    enabled: Flag = False
    pod_cidr_v6: IPv6Net = Field(
        default=ipaddress.IPv6Network("fd00:10:244::/56"),
        alias="podCIDRv6",
        description=f"Pod addresses; a /{NODE_POD_PREFIX_V6 - 16} to /{NODE_POD_PREFIX_V6} "
        f"(a /{NODE_POD_PREFIX_V6} per node)",
    )
    service_cidr_v6: IPv6Net = Field(
        default=ipaddress.IPv6Network("fd00:10:96::/112"),
        alias="serviceCIDRv6",
        description=f"Service addresses; a /{128 - MAX_SERVICE_HOST_BITS} (kube-apiserver's "
        "largest) to /120",
    )

    @field_validator("pod_cidr_v6")
    @classmethod
    def _pod_cidr_v6_size(cls, v: ipaddress.IPv6Network) -> ipaddress.IPv6Network:
        return pod_range_size(v, NODE_POD_PREFIX_V6)

    @field_validator("service_cidr_v6")
    @classmethod
    def _service_cidr_v6_size(cls, v: ipaddress.IPv6Network) -> ipaddress.IPv6Network:
        return service_range_size(v, 120)


def pod_range_size(v: ipaddress.IPv4Network | ipaddress.IPv6Network, node_prefix: int):
    """A pod range kube-controller-manager can cut per-node ranges (/node_prefix) from."""
    if v.prefixlen > node_prefix:
        raise ValueError(f"{v} is smaller than the /{node_prefix} each node gets: use a "
                         f"/{node_prefix} or larger")
    if v.prefixlen < node_prefix - 16:
        raise ValueError(f"{v} is too large: kube-controller-manager cuts at most 2^16 node "
                         f"ranges (/{node_prefix}) from it; use a /{node_prefix - 16} or smaller")
    return v


def service_range_size(v: ipaddress.IPv4Network | ipaddress.IPv6Network, smallest: int):
    """A service range kube-apiserver accepts (at most 20 host bits) with room to grow."""
    largest = v.max_prefixlen - MAX_SERVICE_HOST_BITS
    if v.prefixlen < largest:
        raise ValueError(f"service range {v} is too large: kube-apiserver allows at most "
                         f"{MAX_SERVICE_HOST_BITS} host bits, a /{largest}")
    if v.prefixlen > smallest:
        raise ValueError(f"service range {v} is too small: use a /{smallest} or larger")
    return v


class Networking(Model):
    pod_cidr: IPv4Net = Field(
        default=ipaddress.IPv4Network("10.244.0.0/16"),
        alias="podCIDR",
        description=f"Pod addresses: a /{NODE_POD_PREFIX} per node; a /{NODE_POD_PREFIX - 16} "
        f"to /{NODE_POD_PREFIX}",
    )
    service_cidr: IPv4Net = Field(
        default=ipaddress.IPv4Network("10.96.0.0/12"),
        alias="serviceCIDR",
        description="Service addresses; at least /24 so the DNS address (10th) and growth fit",
    )
    cluster_domain: str = Field(default="cluster.local", pattern=DOMAIN, max_length=253)
    cni: Literal["bridge"] = Field(
        default="bridge",
        description="Pod network plugin: bridge (CNI bridge + host-local, routes between nodes)",
    )
    dual_stack: DualStack = Field(default_factory=DualStack)

    @field_validator("pod_cidr")
    @classmethod
    def _pod_cidr_size(cls, v: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        return pod_range_size(v, NODE_POD_PREFIX)

    @field_validator("service_cidr")
    @classmethod
    def _service_cidr_size(cls, v: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        return service_range_size(v, 24)

    @model_validator(mode="after")
    def _no_overlap(self) -> Networking:
        if self.pod_cidr.overlaps(self.service_cidr):
            raise ValueError(
                f"podCIDR {self.pod_cidr} overlaps serviceCIDR {self.service_cidr}: "
                "pod and service ranges must be disjoint"
            )
        ds = self.dual_stack
        if ds.enabled and ds.pod_cidr_v6.overlaps(ds.service_cidr_v6):
            raise ValueError(
                f"dualStack.podCIDRv6 {ds.pod_cidr_v6} overlaps dualStack.serviceCIDRv6 "
                f"{ds.service_cidr_v6}: pod and service ranges must be disjoint"
            )
        return self

    def ranges(self) -> list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]]:
        """The pod and service ranges in use, each with its name in the spec."""
        out = [("podCIDR", self.pod_cidr), ("serviceCIDR", self.service_cidr)]
        if self.dual_stack.enabled:
            out += [("dualStack.podCIDRv6", self.dual_stack.pod_cidr_v6),
                    ("dualStack.serviceCIDRv6", self.dual_stack.service_cidr_v6)]
        return out


class ApiLoadBalancer(Model):
    type: Literal["none", "local", "external"] = Field(
        default="local",
        description="none: nodes use the first control plane; local: a per-node proxy to every "
        "control plane; external: the address below",
    )
    address: str | None = Field(
        default=None, max_length=253, description="External load balancer DNS name or IP"
    )
    port: Port = 6443


class ControlPlane(Model):
    count: Count | None = Field(
        default=None, description="How many control planes (1, 3 or 5) when hosts are not listed"
    )
    hosts: list[Host] = Field(default_factory=list, max_length=MAX_NODES_PER_GROUP)
    api_load_balancer: ApiLoadBalancer = Field(default_factory=ApiLoadBalancer)
    extra_args: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Extra flags per component (kube-apiserver, kube-controller-manager, "
        "kube-scheduler), flag name without dashes -> value",
    )

    @field_validator("count")
    @classmethod
    def _one_three_five(cls, v: int | None) -> int | None:
        if v is not None and v not in (1, 3, 5):
            raise ValueError(f"must be 1, 3 or 5, not {v}")
        return v

    @model_validator(mode="after")
    def _count_or_hosts(self) -> ControlPlane:
        if self.hosts and self.count is not None and self.count != len(self.hosts):
            raise ValueError(
                f"count is {self.count} but {len(self.hosts)} hosts are listed: give one or the other"
            )
        if self.hosts and len(self.hosts) not in (1, 3, 5):
            raise ValueError(f"{len(self.hosts)} control-plane hosts: use 1, 3 or 5")
        return self


class EtcdBackup(Model):
    enabled: Flag = True
    schedule: str = Field(
        default="*-*-* 00/6:00:00", description="systemd OnCalendar expression for snapshots"
    )
    retain: Count = Field(default=7, ge=1, le=1000, description="Snapshots kept on each member")
    encrypt: Flag = Field(default=False, description="Encrypt snapshots with the backup key")


class EtcdTuning(Model):
    heartbeat_interval_ms: Count = Field(default=250, ge=10, le=10000)
    election_timeout_ms: Count = Field(default=2500, ge=50, le=50000)
    snapshot_count: Count = Field(default=10000, ge=100, le=10_000_000)
    quota_backend_bytes: Count = Field(
        default=8 * GIB,
        ge=1024**2,
        le=64 * GIB,
        description="Database size limit; etcd warns above 8 GiB (its suggested maximum), "
        "kpyops refuses above 64 GiB",
    )

    @model_validator(mode="after")
    def _election_vs_heartbeat(self) -> EtcdTuning:
        if self.election_timeout_ms < 5 * self.heartbeat_interval_ms:
            raise ValueError(
                "electionTimeoutMs must be at least 5x heartbeatIntervalMs (etcd tuning guide)"
            )
        return self


class Etcd(Model):
    members: Count | None = Field(
        default=None,
        description="How many members (odd: 1, 3, 5 or 7); defaults to the control-plane count",
    )
    hosts: list[Host] = Field(
        default_factory=list,
        max_length=7,
        description="Dedicated etcd hosts; empty = on the control planes",
    )
    version: str = Field(default_factory=ETCD.version, pattern=VERSION)
    backup: EtcdBackup = Field(default_factory=EtcdBackup)
    tuning: EtcdTuning = Field(default_factory=EtcdTuning)

    @field_validator("members")
    @classmethod
    def _odd_members(cls, v: int | None) -> int | None:
        if v is None:
            return v
        if v == 2:
            raise ValueError("2 etcd members tolerate no failure and double the risk: use 1, 3 or 5")
        if v < 1 or v > 7:
            raise ValueError(f"{v} etcd members: use 1, 3, 5 or 7")
        if v % 2 == 0:
            raise ValueError(f"{v} etcd members is even: quorum needs an odd count (1, 3, 5 or 7)")
        return v


class Taint(Model):
    key: str
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class KubeletSettings(Model):
    """Kubelet settings; on a node group every field is an optional override."""

    cpu_manager_policy: Literal["none", "static"] | None = None
    cpu_manager_reconcile_period: Duration | None = None
    topology_manager_policy: (
        Literal["none", "best-effort", "restricted", "single-numa-node"] | None
    ) = None
    reserved_system_cpus: str | None = Field(
        default=None,
        alias="reservedSystemCPUs",
        max_length=200,
        description="CPUs kept for the system, a CPU list such as 0-1,4",
    )
    kube_reserved: dict[str, str] | None = Field(
        default=None, description="cpu, memory, ephemeral-storage, pid -> quantity"
    )
    system_reserved: dict[str, str] | None = Field(
        default=None, description="cpu, memory, ephemeral-storage, pid -> quantity"
    )
    eviction_hard: dict[str, str] | None = Field(
        default=None, description="eviction signal -> quantity (100Mi) or percentage (10%)"
    )
    eviction_soft: dict[str, str] | None = Field(
        default=None,
        description="eviction signal -> quantity or percentage; each needs a grace period",
    )
    eviction_soft_grace_period: dict[str, Duration] | None = None
    max_pods: Count | None = Field(
        default=None,
        ge=10,
        le=250,
        description=f"At most 250: each node's pods get addresses from its /{NODE_POD_PREFIX}",
    )
    protect_kernel_defaults: Flag | None = Field(
        default=None,
        description="kubelet refuses to start when kernel tunables differ from what it needs "
        "(CIS 4.2.6; kpyops sets them); local clusters set false: their hosts share this "
        "machine's kernel, whose tunables kpyops does not change",
    )
    fail_cgroup_v1: Flag | None = Field(
        default=None,
        alias="failCgroupV1",
        description="kubelet 1.35+ refuses a cgroup v1 (or hybrid) host unless false; local "
        "clusters set false (test hosts share this machine's hybrid kernel)",
    )

    @field_validator("reserved_system_cpus")
    @classmethod
    def _cpu_list(cls, v: str | None) -> str | None:
        return v if v is None else check_cpu_list(v)

    @field_validator("kube_reserved", "system_reserved")
    @classmethod
    def _reserved(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return v if v is None else check_reserved(v)

    @field_validator("eviction_hard", "eviction_soft")
    @classmethod
    def _thresholds(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return v if v is None else check_thresholds(v)

    @field_validator("eviction_soft_grace_period")
    @classmethod
    def _grace_signals(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        for signal in v or {}:
            check_signal(signal)
        return v

    @model_validator(mode="after")
    def _static_needs_reservation(self) -> KubeletSettings:
        # Decided where this object says it all (a completed spec's settings always do); a
        # node group's partial override is checked once merged with the cluster's.
        if (self.cpu_manager_policy == "static" and not self.reserved_system_cpus
                and self.kube_reserved is not None and self.system_reserved is not None
                and reserved_cpu(self.kube_reserved.get("cpu"))
                + reserved_cpu(self.system_reserved.get("cpu")) <= 0):
            raise ValueError(
                "cpuManagerPolicy static needs CPUs reserved: set reservedSystemCPUs or a "
                "non-zero cpu entry in kubeReserved/systemReserved"
            )
        return self

    @model_validator(mode="after")
    def _soft_needs_grace(self) -> KubeletSettings:
        if self.eviction_soft and self.eviction_soft_grace_period is not None:
            missing = [s for s in self.eviction_soft if s not in self.eviction_soft_grace_period]
            if missing:
                raise ValueError(
                    f"evictionSoft {', '.join(missing)} needs a grace period: set "
                    f"evictionSoftGracePeriod {missing[0]} (such as 1m30s)"
                )
        return self


class NodeGroup(Model):
    name: str = Field(pattern=DNS_LABEL, max_length=NODE_GROUP_NAME_MAX)
    count: Count | None = Field(default=None, ge=0, le=MAX_NODES_PER_GROUP)
    hosts: list[Host] = Field(default_factory=list, max_length=MAX_NODES_PER_GROUP)
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)
    kubelet: KubeletSettings = Field(default_factory=KubeletSettings)
    instance_type: str | None = Field(
        default=None, pattern=INSTANCE_TYPE, description="AWS instance type"
    )

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v in RESERVED_NODE_GROUP_NAMES:
            raise ValueError(f"{v!r} is reserved ({RESERVED_NODE_GROUP_NAMES[v]}): choose "
                             "another name")
        return v

    @model_validator(mode="after")
    def _count_or_hosts(self) -> NodeGroup:
        if self.hosts and self.count is not None and self.count != len(self.hosts):
            raise ValueError(
                f"count is {self.count} but {len(self.hosts)} hosts are listed: give one or the other"
            )
        return self


class KubeProxy(Model):
    implementation: Literal["kpyops"] = Field(
        default="kpyops", description="The service proxy kpyops installs (its own, in Python)"
    )
    mode: Literal[PROXY_MODES] = Field(  # type: ignore[valid-type]
        default=PROXY_DEFAULT_MODE, description="Proxy mode: " + ", ".join(PROXY_MODES))
    scheduler: str = Field(default="rr", description="IPVS scheduler: " + ", ".join(IPVS_SCHEDULERS))
    sync_period: Duration = "30s"
    min_sync_period: Duration = "1s"
    exclude_cidrs: list[IPNet] = Field(default_factory=list, alias="excludeCIDRs", max_length=100)
    strict_arp: Flag = Field(default=False, alias="strictARP")

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, v: str) -> str:
        if v not in IPVS_SCHEDULERS:
            raise ValueError(
                f"unknown IPVS scheduler {v!r}: use one of {', '.join(IPVS_SCHEDULERS)}"
            )
        return v


class Dns(Model):
    provider: Literal["coredns"] = "coredns"
    version: str = Field(default_factory=COREDNS.version)
    cluster_dns: IPv4Addr | None = Field(
        default=None,
        alias="clusterDNS",
        description="DNS service address; defaults to the 10th address of the service CIDR",
    )
    upstreams: list[str] = Field(default_factory=lambda: ["/etc/resolv.conf"], max_length=15)
    cache_ttl: Count = Field(default=30, ge=0, le=3600, alias="cacheTTL")
    pods: Literal["disabled", "insecure", "verified"] = "insecure"
    autopath: Flag = False
    endpoint_pod_names: Flag = False
    stub_domains: dict[str, list[str]] = Field(default_factory=dict)
    replicas: Count = Field(default=2, ge=1, le=20)

    @model_validator(mode="after")
    def _autopath_needs_verified(self) -> Dns:
        if self.autopath and self.pods != "verified":
            raise ValueError("autopath @kubernetes needs pods: verified")
        return self


class Artifact(Model):
    version: str
    url: str | None = Field(default=None, description="Download URL; {version} is substituted")
    sha256: str | None = Field(default=None, pattern=SHA256)


class Artifacts(Model):
    files_repository: str | None = Field(
        default=None,
        description="Base URL of an offline files repository; artifacts without a URL are "
        "fetched from <filesRepository>/<name>/<version>/<file>",
    )
    items: dict[str, Artifact] = Field(default_factory=dict)


class Bastion(Model):
    host: str
    user: str = "root"
    port: Port = 22


class Ssh(Model):
    user: str = "root"
    private_key_file: str | None = Field(
        default=None, description="Private key; local and aws clusters get one in the state store"
    )
    port: Port = 22
    bastion: Bastion | None = None


class Local(Model):
    """Settings of --cloud local: podman machines on one network."""

    subnet: IPv4Net | None = Field(
        default=None,
        description="Podman network subnet, a /16 to /28 (machines from its 10th address); "
        "when empty, create picks a free /24 of 10.213.0.0/16 (the name's own first) "
        "and writes it here",
    )
    image: str | None = Field(default=None, description="Host image; built locally when empty")

    @field_validator("subnet")
    @classmethod
    def _subnet_size(cls, v: ipaddress.IPv4Network | None) -> ipaddress.IPv4Network | None:
        if v is not None and not 16 <= v.prefixlen <= 28:
            raise ValueError(f"{v}: use a prefix between /16 and /28 (machines get addresses "
                             "from its 10th on)")
        return v


class ContainerRuntime(Model):
    """containerd on every host: the sandbox (pause) image and registry mirrors."""

    pause_image: str = Field(
        default_factory=lambda: f"registry.k8s.io/pause:{PAUSE.version()}",
        description="Sandbox image kubelet pods start with",
    )
    restrict_oom_score_adj: Flag = Field(
        default=False,
        alias="restrictOOMScoreAdj",
        description="Never give a container a lower OOM score adjustment than containerd's own "
        "(needed where lowering it is not allowed); local clusters set true: their hosts lack "
        "CAP_SYS_RESOURCE",
    )
    registry_mirrors: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Registry host -> mirror endpoints tried in order before the registry "
        "itself, e.g. {'docker.io': ['https://mirror.example:5000']}",
    )

    @field_validator("registry_mirrors")
    @classmethod
    def _mirror_urls(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for registry, mirrors in v.items():
            if not re.fullmatch(r"[a-z0-9.-]+(:[0-9]+)?|_default", registry):
                raise ValueError(f"registry {registry!r} is not a host[:port] (or _default)")
            for m in mirrors:
                if not re.match(r"^https?://[^/\s]+", m):
                    raise ValueError(f"mirror {m!r} of {registry} must be an http(s):// URL")
        return v


AWS_REGION = describe_pattern(r"^[a-z]{2}(-[a-z]{1,20}){1,3}-[0-9]{1,2}$",
                              "must be a region name such as eu-west-1")
AWS_ZONE = r"^[a-z]{2}(-[a-z]{1,20}){1,3}-[0-9]{1,2}[a-z]$"


class AwsDns(Model):
    """An optional Route53 record for the API load balancer, in an existing hosted zone."""

    zone: str = Field(description="Name of an existing hosted zone, e.g. example.com")
    record: str | None = Field(
        default=None, description="Record name; defaults to api.<cluster>.<zone>"
    )


class Aws(Model):
    """Settings of --cloud aws: the network, machines and API endpoint kpyops makes."""

    region: str = Field(pattern=AWS_REGION, description="Region, e.g. eu-west-1")
    zones: list[str] = Field(
        default_factory=list, description="Zones, one subnet each; defaults to <region>a"
    )
    vpc_id: str | None = Field(
        default=None,
        alias="vpcID",
        pattern=describe_pattern(r"^vpc-[0-9a-f]{1,17}$", "must be a VPC id such as vpc-0a1b2c3d"),
        description="An existing VPC to use (tagged shared, never deleted); empty = a new one",
    )
    cidr: IPv4Net | None = Field(
        default=None,
        description="Range subnets are carved from: the new VPC's CIDR (default 172.20.0.0/16), "
        "or a free range inside an existing VPC (then required)",
    )
    private_subnets: Flag = Field(
        default=False,
        description="Machines in private subnets behind one NAT gateway per zone, reached "
        "through a bastion",
    )
    admin_cidrs: list[IPv4Net] = Field(
        default_factory=lambda: [ipaddress.IPv4Network("0.0.0.0/0")],
        alias="adminCIDRs",
        max_length=50,
        description="Who may reach the API (6443) through the load balancer",
    )
    ssh_cidrs: list[IPv4Net] = Field(
        default_factory=lambda: [ipaddress.IPv4Network("0.0.0.0/0")],
        alias="sshCIDRs",
        max_length=50,
        description="Who may reach SSH (22) on the machines, or on the bastion when private",
    )
    control_plane_instance_type: str = Field(default="t3.medium", pattern=INSTANCE_TYPE)
    node_instance_type: str = Field(
        default="t3.medium",
        pattern=INSTANCE_TYPE,
        description="For node groups that name no instanceType",
    )
    bastion_instance_type: str = Field(default="t3.micro", pattern=INSTANCE_TYPE)
    ami: str | None = Field(
        default=None,
        pattern=describe_pattern(r"^ami-[0-9a-f]{1,17}$", "must be an AMI id such as ami-0a1b2c3d"),
        description="Machine image; empty = the newest official Debian 12 image, found at plan",
    )
    ssh_user: str = Field(default="admin", description="Login user of the image (Debian: admin)")
    root_volume_size: Count = Field(default=50, ge=8, le=16384, description="GiB, gp3, encrypted")
    dns: AwsDns | None = None
    state_bucket: str | None = Field(
        default=None,
        pattern=describe_pattern(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
                                 "must be an S3 bucket name: 3 to 63 lowercase letters, digits, "
                                 "'.' and '-'"),
        description="Bucket of an s3:// state store, checked by doctor",
    )
    extra_tags: dict[str, str] = Field(default_factory=dict, description="Added to every resource")

    @field_validator("zones")
    @classmethod
    def _zones(cls, v: list[str]) -> list[str]:
        for z in v:
            if not re.fullmatch(AWS_ZONE, z):
                raise ValueError(f"{one_line(repr(z), 80)} is not an availability zone name "
                                 "(e.g. eu-west-1a)")
        if len(set(v)) != len(v):
            raise ValueError("zones are listed twice")
        if len(v) > 6:
            raise ValueError("at most 6 zones")
        return v

    @model_validator(mode="after")
    def _checks(self) -> Aws:
        for z in self.zones:
            if not z.startswith(self.region) or len(z) != len(self.region) + 1:
                raise ValueError(f"zone {z} is not in region {self.region}")
        if self.vpc_id and self.cidr is None:
            raise ValueError("vpcID needs cidr: a free range inside that VPC for kpyops' subnets")
        if self.cidr is not None and not 16 <= self.cidr.prefixlen <= 24:
            raise ValueError(f"cidr {self.cidr}: use a prefix between /16 and /24")
        return self


class ClusterSpec(Model):
    kubernetes_version: str = Field(
        default_factory=KUBERNETES.version,
        pattern=K8S_VERSION,
        description=f"From {SUPPORTED_KUBERNETES[0]} up to (not including) "
        f"{SUPPORTED_KUBERNETES[1]}",
    )
    cloud: Literal["local", "baremetal", "aws"] = "local"
    networking: Networking = Field(default_factory=Networking)
    control_plane: ControlPlane = Field(default_factory=ControlPlane)
    etcd: Etcd = Field(default_factory=Etcd)
    node_groups: list[NodeGroup] = Field(default_factory=list, max_length=50)
    kube_proxy: KubeProxy = Field(default_factory=KubeProxy)
    dns: Dns = Field(default_factory=Dns)
    kubelet: KubeletSettings = Field(default_factory=KubeletSettings)
    container_runtime: ContainerRuntime = Field(default_factory=ContainerRuntime)
    artifacts: Artifacts = Field(default_factory=Artifacts)
    ssh: Ssh = Field(default_factory=Ssh)
    local: Local | None = None
    aws: Aws | None = None

    @field_validator("kubernetes_version")
    @classmethod
    def _supported_version(cls, v: str) -> str:
        lo, hi = SUPPORTED_KUBERNETES
        if not version_tuple(lo) <= version_tuple(v) < version_tuple(hi):
            raise ValueError(f"Kubernetes {v} is not supported: use {lo} or later, before {hi}")
        return v

    @field_validator("node_groups")
    @classmethod
    def _unique_group_names(cls, v: list[NodeGroup]) -> list[NodeGroup]:
        first: dict[str, int] = {}
        for i, group in enumerate(v):
            if group.name in first:
                raise ValueError(f"node group name {group.name!r} is used twice: "
                                 f"nodeGroups[{first[group.name]}] and nodeGroups[{i}]")
            first[group.name] = i
        return v


class Metadata(Model):
    name: str = Field(pattern=DNS_LABEL, max_length=CLUSTER_NAME_MAX, description="Cluster name (DNS label)")


class Cluster(Model):
    api_version: Literal["kpyops.io/v1alpha1"] = API_VERSION
    kind: Literal["Cluster"] = KIND
    metadata: Metadata
    spec: ClusterSpec = Field(default_factory=ClusterSpec)

    @property
    def name(self) -> str:
        return self.metadata.name

