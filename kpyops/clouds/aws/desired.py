"""The desired resources of a completed --cloud aws spec, in the order apply makes them.

This is the model of kops' ``pkg/model/awsmodel``: pure (no AWS calls), so a unit test
can read exactly what a spec asks for.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from kpyops.clouds.aws.compute import Instance, KeyPair, LaunchTemplate
from kpyops.clouds.aws.dns import DnsRecord
from kpyops.clouds.aws.iam import IamRole, InstanceProfile, control_plane_policy, node_policy
from kpyops.clouds.aws.loadbalancer import Listener, LoadBalancer, TargetGroup, elb_name
from kpyops.clouds.aws.network import (
    ElasticIp,
    InternetGateway,
    NatGateway,
    RouteTable,
    Subnet,
    Vpc,
)
from kpyops.clouds.aws.resource import Ref, Resource
from kpyops.clouds.aws.security import Rule, SecurityGroup, SecurityGroupRules
from kpyops.spec.errors import SpecError
from kpyops.spec.model import Cluster

API_PORT = 6443
ETCD_PORTS = (2379, 2380)
RESERVED_GROUP_NAMES = ("cp", "bastion")


@dataclass(frozen=True)
class Image:
    id: str
    root_device: str


def subnet_cidrs(cidr: ipaddress.IPv4Network, zones: list[str]) -> dict[str, tuple[str, str]]:
    """(public, private) CIDR per zone: 16 equal blocks, public from the front, private
    from the middle, so adding a zone never moves an existing subnet."""
    blocks = list(cidr.subnets(new_prefix=cidr.prefixlen + 4))
    return {z: (str(blocks[i]), str(blocks[8 + i])) for i, z in enumerate(zones)}


def lb_name(cluster: str) -> str:
    return elb_name(cluster, "api")


def role_name(cluster: str, role: str) -> str:
    return f"kpyops-{cluster}-{role}"


def instance_names(cluster: Cluster) -> list[tuple[str, str, str | None, int]]:
    """(logical name, role, node group, index) of every machine, control planes first."""
    s = cluster.spec
    out = [(f"cp-{i}", "control-plane", None, i) for i in range(1, (s.control_plane.count or 1) + 1)]
    for g in s.node_groups:
        out += [(f"{g.name}-{j}", "node", g.name, j) for j in range(1, (g.count or 0) + 1)]
    return out


def desired_resources(
    cluster: Cluster, image: Image, public_key: Callable[[], str]
) -> list[Resource]:
    s = cluster.spec
    aws = s.aws
    assert aws is not None and aws.cidr is not None, "complete the spec first"
    name = cluster.name
    for i, g in enumerate(s.node_groups):
        if g.name in RESERVED_GROUP_NAMES:
            raise SpecError(f"spec.nodeGroups[{i}].name", f"{g.name!r} is reserved on aws")
    zones = aws.zones
    cidrs = subnet_cidrs(aws.cidr, zones)
    shared = aws.vpc_id is not None
    out: list[Resource] = [
        Vpc("vpc", cidr=str(aws.cidr), existing=aws.vpc_id),
        InternetGateway("igw", vpc=Ref("vpc"), shared=shared),
    ]

    # Subnets: public in every zone; private ones behind a NAT gateway per zone when asked
    for z in zones:
        out.append(Subnet(f"subnet-public-{z}", zone=z, cidr=cidrs[z][0], vpc=Ref("vpc"), public=True))
    out.append(RouteTable("rt-public", vpc=Ref("vpc"), routes={"0.0.0.0/0": Ref("igw")},
                          subnets=[Ref(f"subnet-public-{z}") for z in zones]))
    if aws.private_subnets:
        for z in zones:
            out += [
                Subnet(f"subnet-private-{z}", zone=z, cidr=cidrs[z][1], vpc=Ref("vpc"), public=False),
                ElasticIp(f"eip-nat-{z}"),
                NatGateway(f"nat-{z}", subnet=Ref(f"subnet-public-{z}"), allocation=Ref(f"eip-nat-{z}")),
                RouteTable(f"rt-private-{z}", vpc=Ref("vpc"), routes={"0.0.0.0/0": Ref(f"nat-{z}")},
                           subnets=[Ref(f"subnet-private-{z}")]),
            ]
    machine_subnet = "subnet-private" if aws.private_subnets else "subnet-public"

    # Security groups: created empty, then their rules (they name each other)
    groups = ["sg-control-plane", "sg-etcd", "sg-nodes"] + (["sg-bastion"] if aws.private_subnets else [])
    for g in groups:
        out.append(SecurityGroup(g, vpc=Ref("vpc"), description=f"kpyops {name} {g.removeprefix('sg-')}"))
    ssh_from: list[str | Ref] = (
        [Ref("sg-bastion")] if aws.private_subnets else [str(c) for c in aws.ssh_cidrs]
    )
    cp_rules = [Rule("-1", -1, -1, Ref("sg-control-plane"))]
    cp_rules += [Rule("tcp", API_PORT, API_PORT, str(c)) for c in aws.admin_cidrs]
    # The NLB's health checks come from its own addresses in the public subnets
    cp_rules += [Rule("tcp", API_PORT, API_PORT, cidrs[z][0]) for z in zones]
    # Nodes reach everything on the control planes except etcd
    cp_rules += [
        Rule("tcp", 1, ETCD_PORTS[0] - 1, Ref("sg-nodes")),
        Rule("tcp", ETCD_PORTS[1] + 1, 65535, Ref("sg-nodes")),
        Rule("udp", 1, 65535, Ref("sg-nodes")),
        Rule("4", -1, -1, Ref("sg-nodes")),
    ]
    cp_rules += [Rule("tcp", 22, 22, src) for src in ssh_from]
    node_rules = [Rule("-1", -1, -1, Ref("sg-nodes")), Rule("-1", -1, -1, Ref("sg-control-plane"))]
    node_rules += [Rule("tcp", 22, 22, src) for src in ssh_from]
    rules = {
        "sg-control-plane": cp_rules,
        "sg-etcd": [Rule("tcp", ETCD_PORTS[0], ETCD_PORTS[1], Ref("sg-control-plane"))],
        "sg-nodes": node_rules,
        "sg-bastion": [Rule("tcp", 22, 22, str(c)) for c in aws.ssh_cidrs],
    }
    for g in groups:
        out.append(SecurityGroupRules(f"rules-{g}", group=g, rules=rules[g]))

    # IAM: one role and instance profile per machine role
    for role, policy in (("control-plane", control_plane_policy(name)), ("nodes", node_policy(name))):
        rn = role_name(name, role)
        out.append(IamRole(f"role-{role}", role_name=rn, policy=policy))
        out.append(InstanceProfile(f"profile-{role}", profile_name=rn, role=rn))

    key_name = f"kpyops-{name}"
    out.append(KeyPair("keypair", key_name=key_name, public_key=public_key))

    def template(logical: str, instance_type: str, profile: str | None, sgs: list[str]) -> LaunchTemplate:
        return LaunchTemplate(
            logical, lt_name=f"kpyops-{name}-{logical.removeprefix('lt-')}", image=image.id,
            root_device=image.root_device, instance_type=instance_type, profile=profile,
            security_groups=[Ref(g) for g in sgs], key_name=key_name,
            volume_size=aws.root_volume_size,
        )

    out.append(template("lt-control-plane", aws.control_plane_instance_type,
                        role_name(name, "control-plane"), ["sg-control-plane", "sg-etcd"]))
    for g in s.node_groups:
        out.append(template(f"lt-{g.name}", g.instance_type or aws.node_instance_type,
                            role_name(name, "nodes"), ["sg-nodes"]))
    if aws.private_subnets:
        out.append(template("lt-bastion", aws.bastion_instance_type, None, ["sg-bastion"]))
        out.append(Instance("bastion", role="bastion", subnet=Ref(f"subnet-public-{zones[0]}"),
                            launch_template=Ref("lt-bastion")))

    cps = []
    for logical, role, group, index in instance_names(cluster):
        zone = zones[(index - 1) % len(zones)]
        lt = "lt-control-plane" if role == "control-plane" else f"lt-{group}"
        out.append(Instance(logical, role=role, group=group, zone=zone,
                            subnet=Ref(f"{machine_subnet}-{zone}"), launch_template=Ref(lt)))
        if role == "control-plane":
            cps.append(Ref(logical))

    # The API endpoint
    lbn = lb_name(name)
    out += [
        TargetGroup("tg-api", tg_name=elb_name(name, "cp"), port=API_PORT, vpc=Ref("vpc"), targets=cps),
        LoadBalancer("lb-api", lb_name=lbn, subnets=[Ref(f"subnet-public-{z}") for z in zones]),
        Listener("listener-api", lb="lb-api", target_group="tg-api", port=API_PORT),
    ]
    if aws.dns is not None:
        out.append(DnsRecord("dns-api", zone=aws.dns.zone, record=aws.dns.record, lb="lb-api",
                             lb_name=lbn))
    return out
