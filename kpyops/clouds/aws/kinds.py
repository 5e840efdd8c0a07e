"""Every resource kind kpyops can own, for scans and deletes."""

from __future__ import annotations

from kpyops.clouds.aws.compute import Instance, KeyPair, LaunchTemplate, Volume
from kpyops.clouds.aws.dns import DnsRecord
from kpyops.clouds.aws.iam import IamRole, InstanceProfile
from kpyops.clouds.aws.loadbalancer import LoadBalancer, TargetGroup
from kpyops.clouds.aws.network import (
    ElasticIp,
    InternetGateway,
    NatGateway,
    RouteTable,
    Subnet,
    Vpc,
)
from kpyops.clouds.aws.resource import Resource
from kpyops.clouds.aws.security import SecurityGroup

SCANNED: dict[str, type[Resource]] = {
    cls.kind: cls
    for cls in (
        DnsRecord, Instance, LoadBalancer, TargetGroup, NatGateway, LaunchTemplate, KeyPair,
        ElasticIp, InstanceProfile, IamRole, SecurityGroup, RouteTable, InternetGateway,
        Subnet, Volume, Vpc,
    )
}
# A plan deletes what the spec no longer asks for; volumes are never desired, so they
# are only deleted with the whole cluster.
ORPHAN_KINDS = tuple(k for k in SCANNED if k != Volume.kind)
