"""The cluster spec: one typed model, the single source of defaults and validation.

A user's spec may leave most fields out; ``kpyops.spec.complete`` fills every default and
returns the same model with nothing left implicit (``get cluster --full`` shows it).
Field names are camelCase on the wire, like Kubernetes objects.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from kpyops.artifacts.catalog import COREDNS, ETCD, KUBERNETES, PAUSE
from kpyops.spec.names import CLUSTER_NAME_MAX, DNS_LABEL, HOST_NAME_MAX, NODE_GROUP_NAME_MAX

API_VERSION = "kpyops.io/v1alpha1"
KIND = "Cluster"

IPVS_SCHEDULERS = ("rr", "wrr", "lc", "dh", "sh", "sed", "nq")
DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"

Duration = Annotated[str, Field(pattern=DURATION, description="Go duration, e.g. 30s, 1m30s")]


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
    address: ipaddress.IPv4Address | ipaddress.IPv6Address = Field(
        description="Address the cluster uses to reach the host"
    )
    ssh_address: str | None = Field(
        default=None, description="Address Ansible connects to, when not `address`"
    )


class DualStack(Model):
    enabled: bool = False
    pod_cidr_v6: ipaddress.IPv6Network = Field(
        default=ipaddress.IPv6Network("fd00:10:244::/56"), alias="podCIDRv6"
    )
    service_cidr_v6: ipaddress.IPv6Network = Field(
        default=ipaddress.IPv6Network("fd00:10:96::/112"), alias="serviceCIDRv6"
    )


class Networking(Model):
    pod_cidr: ipaddress.IPv4Network = Field(
        default=ipaddress.IPv4Network("10.244.0.0/16"), alias="podCIDR"
    )
    service_cidr: ipaddress.IPv4Network = Field(
        default=ipaddress.IPv4Network("10.96.0.0/12"),
        alias="serviceCIDR",
        description="Service addresses; at least /24 so the DNS address (10th) and growth fit",
    )
    cluster_domain: str = Field(default="cluster.local", pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    cni: Literal["bridge"] = Field(
        default="bridge",
        description="Pod network plugin: bridge (CNI bridge + host-local, routes between nodes)",
    )
    dual_stack: DualStack = Field(default_factory=DualStack)

    @field_validator("service_cidr")
    @classmethod
    def _service_cidr_size(cls, v: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if v.prefixlen > 24:
            raise ValueError(f"service CIDR {v} is too small: use a /24 or larger (at most /24)")
        if v.prefixlen < 12:
            raise ValueError(f"service CIDR {v} is too large: kube-apiserver allows at most /12")
        return v

    @model_validator(mode="after")
    def _no_overlap(self) -> Networking:
        if self.pod_cidr.overlaps(self.service_cidr):
            raise ValueError(
                f"podCIDR {self.pod_cidr} overlaps serviceCIDR {self.service_cidr}: "
                "pod and service ranges must be disjoint"
            )
        ds = self.dual_stack
        if ds.enabled and ds.pod_cidr_v6.overlaps(ds.service_cidr_v6):
            raise ValueError("dualStack.podCIDRv6 overlaps dualStack.serviceCIDRv6")
        return self


class ApiLoadBalancer(Model):
    type: Literal["none", "local", "external"] = Field(
        default="local",
        description="none: nodes use the first control plane; local: a per-node proxy to every "
        "control plane; external: the address below",
    )
    address: str | None = Field(default=None, description="External load balancer DNS name or IP")
    port: int = Field(default=6443, ge=1, le=65535)


class ControlPlane(Model):
    count: Literal[1, 3, 5] | None = Field(
        default=None, description="How many control planes (1, 3 or 5) when hosts are not listed"
    )
    hosts: list[Host] = Field(default_factory=list)
    api_load_balancer: ApiLoadBalancer = Field(default_factory=ApiLoadBalancer)
    extra_args: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="Extra flags per component (kube-apiserver, kube-controller-manager, "
        "kube-scheduler), flag name without dashes -> value",
    )

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
    enabled: bool = True
    schedule: str = Field(
        default="*-*-* 00/6:00:00", description="systemd OnCalendar expression for snapshots"
    )
    retain: int = Field(default=7, ge=1, le=1000, description="Snapshots kept on each member")
    encrypt: bool = Field(default=False, description="Encrypt snapshots with the backup key")


class EtcdTuning(Model):
    heartbeat_interval_ms: int = Field(default=250, ge=10, le=10000)
    election_timeout_ms: int = Field(default=2500, ge=50, le=50000)
    snapshot_count: int = Field(default=10000, ge=100)
    quota_backend_bytes: int = Field(default=8 * 1024**3, ge=1024**2)

    @model_validator(mode="after")
    def _election_vs_heartbeat(self) -> EtcdTuning:
        if self.election_timeout_ms < 5 * self.heartbeat_interval_ms:
            raise ValueError(
                "electionTimeoutMs must be at least 5x heartbeatIntervalMs (etcd tuning guide)"
            )
        return self


class Etcd(Model):
    members: int | None = Field(
        default=None,
        description="How many members (odd: 1, 3, 5 or 7); defaults to the control-plane count",
    )
    hosts: list[Host] = Field(
        default_factory=list, description="Dedicated etcd hosts; empty = on the control planes"
    )
    version: str = Field(default_factory=ETCD.version, pattern=r"^\d+\.\d+\.\d+$")
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
        default=None, alias="reservedSystemCPUs", pattern=r"^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$"
    )
    kube_reserved: dict[str, str] | None = None
    system_reserved: dict[str, str] | None = None
    eviction_hard: dict[str, str] | None = None
    eviction_soft: dict[str, str] | None = None
    eviction_soft_grace_period: dict[str, str] | None = None
    max_pods: int | None = Field(default=None, ge=10, le=2500)
    protect_kernel_defaults: bool | None = Field(
        default=None,
        description="kubelet refuses to start when kernel tunables differ from what it needs "
        "(CIS 4.2.6; kpyops sets them); local clusters set false: their hosts share this "
        "machine's kernel, whose tunables kpyops does not change",
    )
    fail_cgroup_v1: bool | None = Field(
        default=None,
        alias="failCgroupV1",
        description="kubelet 1.35+ refuses a cgroup v1 (or hybrid) host unless false; local "
        "clusters set false (test hosts share this machine's hybrid kernel)",
    )

    @model_validator(mode="after")
    def _static_needs_reservation(self) -> KubeletSettings:
        if self.cpu_manager_policy == "static":
            reserved_cpu = self.reserved_system_cpus or (self.kube_reserved or {}).get("cpu") or (
                self.system_reserved or {}
            ).get("cpu")
            if self.kube_reserved is not None and not reserved_cpu:
                raise ValueError(
                    "cpuManagerPolicy static needs CPUs reserved: set reservedSystemCPUs or a "
                    "cpu entry in kubeReserved/systemReserved"
                )
        return self


class NodeGroup(Model):
    name: str = Field(pattern=DNS_LABEL, max_length=NODE_GROUP_NAME_MAX)
    count: int | None = Field(default=None, ge=0, le=500)
    hosts: list[Host] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)
    kubelet: KubeletSettings = Field(default_factory=KubeletSettings)
    instance_type: str | None = Field(default=None, description="AWS instance type")

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
    mode: Literal["ipvs", "iptables"] = "ipvs"
    scheduler: str = Field(default="rr", description="IPVS scheduler: " + ", ".join(IPVS_SCHEDULERS))
    sync_period: Duration = "30s"
    min_sync_period: Duration = "1s"
    exclude_cidrs: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = Field(
        default_factory=list, alias="excludeCIDRs"
    )
    strict_arp: bool = Field(default=False, alias="strictARP")

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
    cluster_dns: ipaddress.IPv4Address | None = Field(
        default=None,
        alias="clusterDNS",
        description="DNS service address; defaults to the 10th address of the service CIDR",
    )
    upstreams: list[str] = Field(default_factory=lambda: ["/etc/resolv.conf"])
    cache_ttl: int = Field(default=30, ge=0, le=3600, alias="cacheTTL")
    pods: Literal["disabled", "insecure", "verified"] = "insecure"
    autopath: bool = False
    endpoint_pod_names: bool = False
    stub_domains: dict[str, list[str]] = Field(default_factory=dict)
    replicas: int = Field(default=2, ge=1, le=20)

    @model_validator(mode="after")
    def _autopath_needs_verified(self) -> Dns:
        if self.autopath and self.pods != "verified":
            raise ValueError("autopath @kubernetes needs pods: verified")
        return self


class Artifact(Model):
    version: str
    url: str | None = Field(default=None, description="Download URL; {version} is substituted")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


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
    port: int = Field(default=22, ge=1, le=65535)


class Ssh(Model):
    user: str = "root"
    private_key_file: str | None = Field(
        default=None, description="Private key; local and aws clusters get one in the state store"
    )
    port: int = Field(default=22, ge=1, le=65535)
    bastion: Bastion | None = None


class Local(Model):
    """Settings of --cloud local: podman machines on one network."""

    subnet: ipaddress.IPv4Network | None = Field(
        default=None, description="Podman network subnet; derived from the name when empty"
    )
    image: str | None = Field(default=None, description="Host image; built locally when empty")


class ContainerRuntime(Model):
    """containerd on every host: the sandbox (pause) image and registry mirrors."""

    pause_image: str = Field(
        default_factory=lambda: f"registry.k8s.io/pause:{PAUSE.version()}",
        description="Sandbox image kubelet pods start with",
    )
    restrict_oom_score_adj: bool = Field(
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


AWS_REGION = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$"
AWS_ZONE = r"^[a-z]{2}(-[a-z]+)+-[0-9]+[a-z]$"


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
        pattern=r"^vpc-[0-9a-f]+$",
        description="An existing VPC to use (tagged shared, never deleted); empty = a new one",
    )
    cidr: ipaddress.IPv4Network | None = Field(
        default=None,
        description="Range subnets are carved from: the new VPC's CIDR (default 172.20.0.0/16), "
        "or a free range inside an existing VPC (then required)",
    )
    private_subnets: bool = Field(
        default=False,
        description="Machines in private subnets behind one NAT gateway per zone, reached "
        "through a bastion",
    )
    admin_cidrs: list[ipaddress.IPv4Network] = Field(
        default_factory=lambda: [ipaddress.IPv4Network("0.0.0.0/0")],
        alias="adminCIDRs",
        description="Who may reach the API (6443) through the load balancer",
    )
    ssh_cidrs: list[ipaddress.IPv4Network] = Field(
        default_factory=lambda: [ipaddress.IPv4Network("0.0.0.0/0")],
        alias="sshCIDRs",
        description="Who may reach SSH (22) on the machines, or on the bastion when private",
    )
    control_plane_instance_type: str = Field(
        default="t3.medium", pattern=r"^[a-z0-9-]+\.[a-z0-9]+$"
    )
    node_instance_type: str = Field(
        default="t3.medium",
        pattern=r"^[a-z0-9-]+\.[a-z0-9]+$",
        description="For node groups that name no instanceType",
    )
    bastion_instance_type: str = Field(default="t3.micro", pattern=r"^[a-z0-9-]+\.[a-z0-9]+$")
    ami: str | None = Field(
        default=None,
        pattern=r"^ami-[0-9a-f]+$",
        description="Machine image; empty = the newest official Debian 12 image, found at plan",
    )
    ssh_user: str = Field(default="admin", description="Login user of the image (Debian: admin)")
    root_volume_size: int = Field(default=50, ge=8, le=16384, description="GiB, gp3, encrypted")
    dns: AwsDns | None = None
    state_bucket: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="Bucket of an s3:// state store, checked by doctor",
    )
    extra_tags: dict[str, str] = Field(default_factory=dict, description="Added to every resource")

    @field_validator("zones")
    @classmethod
    def _zones(cls, v: list[str]) -> list[str]:
        for z in v:
            if not re.fullmatch(AWS_ZONE, z):
                raise ValueError(f"{z!r} is not an availability zone name (e.g. eu-west-1a)")
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
    kubernetes_version: str = Field(default_factory=KUBERNETES.version, pattern=r"^1\.\d+\.\d+$")
    cloud: Literal["local", "baremetal", "aws"] = "local"
    networking: Networking = Field(default_factory=Networking)
    control_plane: ControlPlane = Field(default_factory=ControlPlane)
    etcd: Etcd = Field(default_factory=Etcd)
    node_groups: list[NodeGroup] = Field(default_factory=list)
    kube_proxy: KubeProxy = Field(default_factory=KubeProxy)
    dns: Dns = Field(default_factory=Dns)
    kubelet: KubeletSettings = Field(default_factory=KubeletSettings)
    container_runtime: ContainerRuntime = Field(default_factory=ContainerRuntime)
    artifacts: Artifacts = Field(default_factory=Artifacts)
    ssh: Ssh = Field(default_factory=Ssh)
    local: Local | None = None
    aws: Aws | None = None


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


def _hostname_rule(name: str) -> bool:
    return re.fullmatch(DNS_LABEL, name) is not None
