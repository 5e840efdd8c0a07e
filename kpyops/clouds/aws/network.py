"""Network resources: VPC, internet gateway, subnets, elastic IPs, NAT gateways, routes."""

from __future__ import annotations

import time
from typing import Any

from kpyops.clouds.aws.errors import AwsError
from kpyops.clouds.aws.resource import (
    TAG_CLUSTER,
    TAG_OWNER,
    TAG_RESOURCE,
    Actual,
    Context,
    Found,
    Resource,
    first,
    k8s_tag,
    tag_dict,
)

INSTANCE_USERS = ("instance", "nat-gateway", "load-balancer")


def enis_using(ctx: Context, name: str, value: str) -> str:
    """The network interfaces matching a filter, in words: what blocks a delete."""
    enis = ctx.call("ec2", "describe_network_interfaces", Filters=[{"Name": name, "Values": [value]}])
    items = [
        f"{e['NetworkInterfaceId']} ({e.get('Description') or e.get('InterfaceType') or 'no description'})"
        for e in enis.get("NetworkInterfaces", [])
    ]
    return ("in use by " + ", ".join(items[:5])) if items else ""


def wait_until(check, what: str, timeout: float = 600, interval: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AwsError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def scan_ec2(ctx: Context, kind: str, op: str, key: str, id_key: str, **kw) -> list[Found]:
    out = []
    for item in ctx.pages("ec2", op, key, Filters=ctx.owned_filters(), **kw):
        if not ctx.owns(item):
            continue
        tags = tag_dict(item.get("Tags"))
        out.append(
            Found(
                kind,
                item[id_key],
                tags.get(TAG_RESOURCE, item[id_key]),
                state=item.get("State", "") if isinstance(item.get("State"), str) else "",
                shared=tags.get(k8s_tag(ctx.cluster)) == "shared",
                extra=item,
            )
        )
    return out


class Vpc(Resource):
    """A new VPC, or an existing one (``existing``) that is only tagged shared."""

    kind = "vpc"
    mutable = frozenset({"enableDnsHostnames", "sharedTag"})
    delete_after = (
        "instance", "nat-gateway", "load-balancer", "internet-gateway", "subnet",
        "route-table", "security-group", "elastic-ip",
    )

    @property
    def shared(self) -> bool:
        return bool(self.spec.get("existing"))

    def find(self, ctx: Context) -> Actual | None:
        if self.shared:
            try:
                vpc = ctx.call("ec2", "describe_vpcs", VpcIds=[self.spec["existing"]])["Vpcs"][0]
            except AwsError as err:
                if "NotFound" in err.code:
                    raise AwsError(
                        f"spec.aws.vpcID {self.spec['existing']} does not exist in {ctx.session.region}"
                    ) from None
                raise
            tags = tag_dict(vpc.get("Tags"))
            return Actual(vpc["VpcId"], {"cidr": vpc["CidrBlock"],
                                         "sharedTag": tags.get(k8s_tag(ctx.cluster))}, vpc)
        vpc = first(ctx.call("ec2", "describe_vpcs", Filters=ctx.owned_filters(self.name))["Vpcs"])
        if vpc is None:
            return None
        attr = ctx.call("ec2", "describe_vpc_attribute", VpcId=vpc["VpcId"],
                        Attribute="enableDnsHostnames")
        return Actual(vpc["VpcId"], {
            "cidr": vpc["CidrBlock"],
            "enableDnsHostnames": attr["EnableDnsHostnames"]["Value"],
        }, vpc)

    def desired(self, ctx: Context) -> dict[str, Any]:
        if self.shared:
            return {"sharedTag": "shared"}
        return {"cidr": self.spec["cidr"], "enableDnsHostnames": True}

    def create(self, ctx: Context) -> Actual:
        if self.shared:
            raise AwsError(f"VPC {self.spec['existing']} not found")
        vpc = ctx.call("ec2", "create_vpc", CidrBlock=self.spec["cidr"],
                       TagSpecifications=ctx.tag_specs("vpc", self.name))["Vpc"]
        for attr in ("EnableDnsSupport", "EnableDnsHostnames"):
            ctx.call("ec2", "modify_vpc_attribute", VpcId=vpc["VpcId"], **{attr: {"Value": True}})
        return Actual(vpc["VpcId"], self.desired(ctx), vpc)

    def update(self, ctx: Context, actual: Actual, changes) -> None:
        if "sharedTag" in changes:
            ctx.call("ec2", "create_tags", Resources=[actual.id], Tags=ctx.tag_list(self.name, shared=True))
        if "enableDnsHostnames" in changes:
            ctx.call("ec2", "modify_vpc_attribute", VpcId=actual.id, EnableDnsHostnames={"Value": True})

    @classmethod
    def scan(cls, ctx: Context) -> list[Found]:
        return scan_ec2(ctx, cls.kind, "describe_vpcs", "Vpcs", "VpcId")

    @classmethod
    def delete(cls, ctx: Context, found: Found) -> None:
        if found.shared:
            names = [TAG_CLUSTER, TAG_RESOURCE, TAG_OWNER, k8s_tag(ctx.cluster), "Name"]
            ctx.call("ec2", "delete_tags", Resources=[found.id], Tags=[{"Key": k} for k in names])
            return
        ctx.call("ec2", "delete_vpc", VpcId=found.id)

    @classmethod
    def blockers(cls, ctx: Context, found: Found) -> str:
        words = [enis_using(ctx, "vpc-id", found.id)]
        vpc_filter = [{"Name": "vpc-id", "Values": [found.id]}]
        foreign = [
            f"{x['SubnetId']} ({x['CidrBlock']})"
            for x in ctx.call("ec2", "describe_subnets", Filters=vpc_filter)["Subnets"]
            if not ctx.owns(x)
        ]
        foreign += [
            f"{g['GroupId']} ({g['GroupName']})"
            for g in ctx.call("ec2", "describe_security_groups", Filters=vpc_filter)["SecurityGroups"]
            if not ctx.owns(g) and g["GroupName"] != "default"
        ]
        if foreign:
            words.append("holds objects kpyops did not make: " + ", ".join(foreign[:5]))
        return "; ".join(w for w in words if w)


class InternetGateway(Resource):
    kind = "internet-gateway"
    mutable = frozenset({"vpc"})
    delete_after = ("instance", "nat-gateway", "load-balancer", "elastic-ip")

    @property
    def shared(self) -> bool:
        return bool(self.spec.get("shared"))

    def find(self, ctx: Context) -> Actual | None:
        if self.shared:
            vpc = ctx.resolve(self.spec["vpc"])
            igws = ctx.call("ec2", "describe_internet_gateways",
                            Filters=[{"Name": "attachment.vpc-id", "Values": [str(vpc)]}])
            igw = first(igws["InternetGateways"])
            if igw is None:
                raise AwsError(f"the existing VPC {vpc} has no internet gateway: attach one first")
        else:
            igw = first(ctx.call("ec2", "describe_internet_gateways",
                                 Filters=ctx.owned_filters(self.name))["InternetGateways"])
        if igw is None:
            return None
        attached = [a["VpcId"] for a in igw.get("Attachments", [])]
        return Actual(igw["InternetGatewayId"], {"vpc": attached[0] if attached else None}, igw)

    def desired(self, ctx: Context) -> dict[str, Any]:
        return {"vpc": ctx.resolve(self.spec["vpc"])}

    def create(self, ctx: Context) -> Actual:
        igw = ctx.call("ec2", "create_internet_gateway",
                       TagSpecifications=ctx.tag_specs("internet-gateway", self.name))["InternetGateway"]
        actual = Actual(igw["InternetGatewayId"], {"vpc": None}, igw)
        self.update(ctx, actual, {"vpc": (None, ctx.resolve(self.spec["vpc"]))})
        return actual

    def update(self, ctx: Context, actual: Actual, changes) -> None:
        old, new = changes["vpc"]
        if old:
            ctx.call("ec2", "detach_internet_gateway", InternetGatewayId=actual.id, VpcId=old)
        ctx.call("ec2", "attach_internet_gateway", InternetGatewayId=actual.id, VpcId=new)

    @classmethod
    def scan(cls, ctx: Context) -> list[Found]:
        return scan_ec2(ctx, cls.kind, "describe_internet_gateways", "InternetGateways",
                         "InternetGatewayId")

    @classmethod
    def delete(cls, ctx: Context, found: Found) -> None:
        for a in found.extra.get("Attachments", []):
            ctx.call("ec2", "detach_internet_gateway", InternetGatewayId=found.id, VpcId=a["VpcId"])
        ctx.call("ec2", "delete_internet_gateway", InternetGatewayId=found.id)


class Subnet(Resource):
    kind = "subnet"
    mutable = frozenset({"mapPublicIp"})
    delete_after = ("instance", "nat-gateway", "load-balancer")

    def find(self, ctx: Context) -> Actual | None:
        s = first(ctx.call("ec2", "describe_subnets", Filters=ctx.owned_filters(self.name))["Subnets"])
        if s is None:
            return None
        return Actual(s["SubnetId"], {
            "cidr": s["CidrBlock"], "zone": s["AvailabilityZone"], "vpc": s["VpcId"],
            "mapPublicIp": s.get("MapPublicIpOnLaunch", False),
        }, s)

    def desired(self, ctx: Context) -> dict[str, Any]:
        return {
            "cidr": self.spec["cidr"], "zone": self.spec["zone"],
            "vpc": ctx.resolve(self.spec["vpc"]), "mapPublicIp": self.spec["public"],
        }

    def create(self, ctx: Context) -> Actual:
        tags = ctx.tag_list(self.name)
        # What the AWS cloud provider and load balancer controller look for
        role = "kubernetes.io/role/elb" if self.spec["public"] else "kubernetes.io/role/internal-elb"
        tags.append({"Key": role, "Value": "1"})
        s = ctx.call("ec2", "create_subnet", VpcId=ctx.resolve(self.spec["vpc"]),
                     CidrBlock=self.spec["cidr"], AvailabilityZone=self.spec["zone"],
                     TagSpecifications=[{"ResourceType": "subnet", "Tags": tags}])["Subnet"]
        actual = Actual(s["SubnetId"], {}, s)
        if self.spec["public"]:
            self.update(ctx, actual, {"mapPublicIp": (False, True)})
        return actual

    def update(self, ctx: Context, actual: Actual, changes) -> None:
        ctx.call("ec2", "modify_subnet_attribute", SubnetId=actual.id,
                 MapPublicIpOnLaunch={"Value": bool(changes["mapPublicIp"][1])})

    @classmethod
    def scan(cls, ctx: Context) -> list[Found]:
        return scan_ec2(ctx, cls.kind, "describe_subnets", "Subnets", "SubnetId")

    @classmethod
    def delete(cls, ctx: Context, found: Found) -> None:
        ctx.call("ec2", "delete_subnet", SubnetId=found.id)

    @classmethod
    def blockers(cls, ctx: Context, found: Found) -> str:
        return enis_using(ctx, "subnet-id", found.id)


class ElasticIp(Resource):
    kind = "elastic-ip"
    delete_after = ("nat-gateway", "instance")

    def find(self, ctx: Context) -> Actual | None:
        a = first(ctx.call("ec2", "describe_addresses", Filters=ctx.owned_filters(self.name))["Addresses"])
        return Actual(a["AllocationId"], {}, a) if a else None

    def desired(self, ctx: Context) -> dict[str, Any]:
        return {}

    def create(self, ctx: Context) -> Actual:
        a = ctx.call("ec2", "allocate_address", Domain="vpc",
                     TagSpecifications=ctx.tag_specs("elastic-ip", self.name))
        return Actual(a["AllocationId"], {}, a)

    @classmethod
    def scan(cls, ctx: Context) -> list[Found]:
        out = []
        for a in ctx.call("ec2", "describe_addresses", Filters=ctx.owned_filters())["Addresses"]:
            tags = tag_dict(a.get("Tags"))
            out.append(Found(cls.kind, a["AllocationId"], tags.get(TAG_RESOURCE, ""), extra=a))
        return out

    @classmethod
    def delete(cls, ctx: Context, found: Found) -> None:
        ctx.call("ec2", "release_address", AllocationId=found.id)


class NatGateway(Resource):
    kind = "nat-gateway"

    def find(self, ctx: Context) -> Actual | None:
        filters = [*ctx.owned_filters(self.name), {"Name": "state", "Values": ["pending", "available"]}]
        n = first([x for x in ctx.call("ec2", "describe_nat_gateways", Filter=filters)["NatGateways"]
                   if ctx.owns(x, self.name) and x["State"] in ("pending", "available")])
        if n is None:
            return None
        allocation = first(n.get("NatGatewayAddresses", [])) or {}
        return Actual(n["NatGatewayId"], {"subnet": n["SubnetId"],
                                          "allocation": allocation.get("AllocationId")}, n)

    def desired(self, ctx: Context) -> dict[str, Any]:
        return {"subnet": ctx.resolve(self.spec["subnet"]),
                "allocation": ctx.resolve(self.spec["allocation"])}

    def create(self, ctx: Context) -> Actual:
        n = ctx.call("ec2", "create_nat_gateway", SubnetId=ctx.resolve(self.spec["subnet"]),
                     AllocationId=ctx.resolve(self.spec["allocation"]),
                     TagSpecifications=ctx.tag_specs("natgateway", self.name))["NatGateway"]
        nid = n["NatGatewayId"]

        def available() -> bool:
            state = ctx.call("ec2", "describe_nat_gateways", NatGatewayIds=[nid])["NatGateways"][0]["State"]
            if state == "failed":
                raise AwsError(f"NAT gateway {nid} failed to start")
            return state == "available"

        wait_until(available, f"NAT gateway {nid} to become available")
        return Actual(nid, self.desired(ctx), n)

    @classmethod
    def scan(cls, ctx: Context) -> list[Found]:
        filters = [*ctx.owned_filters(), {"Name": "state", "Values": ["pending", "available", "deleting"]}]
        out = []
        for n in ctx.call("ec2", "describe_nat_gateways", Filter=filters)["NatGateways"]:
            if not ctx.owns(n) or n["State"] in ("deleted", "failed"):
                continue
            tags = tag_dict(n.get("Tags"))
            out.append(Found(cls.kind, n["NatGatewayId"], tags.get(TAG_RESOURCE, ""),
                             state=n["State"] if n["State"] == "deleting" else "", extra=n))
        return out

    @classmethod
    def delete(cls, ctx: Context, found: Found) -> None:
        ctx.call("ec2", "delete_nat_gateway", NatGatewayId=found.id)


class RouteTable(Resource):
    """A route table with its default route (to the internet or NAT gateway) and subnets."""

    kind = "route-table"
    mutable = frozenset({"routes", "subnets"})
    delete_after = ("nat-gateway",)

    def find(self, ctx: Context) -> Actual | None:
        rt = first(ctx.call("ec2", "describe_route_tables", Filters=ctx.owned_filters(self.name))["RouteTables"])
        if rt is None:
            return None
        routes = {
            r["DestinationCidrBlock"]: r.get("GatewayId") or r.get("NatGatewayId")
            for r in rt.get("Routes", [])
            if r.get("DestinationCidrBlock") and r.get("GatewayId") != "local"
        }
        subnets = [a["SubnetId"] for a in rt.get("Associations", []) if a.get("SubnetId")]
        return Actual(rt["RouteTableId"], {"vpc": rt["VpcId"], "routes": routes, "subnets": subnets}, rt)

    def desired(self, ctx: Context) -> dict[str, Any]:
        return {
            "vpc": ctx.resolve(self.spec["vpc"]),
            "routes": ctx.resolve(self.spec["routes"]),
            "subnets": ctx.resolve(self.spec["subnets"]),
        }

    def create(self, ctx: Context) -> Actual:
        rt = ctx.call("ec2", "create_route_table", VpcId=ctx.resolve(self.spec["vpc"]),
                      TagSpecifications=ctx.tag_specs("route-table", self.name))["RouteTable"]
        actual = Actual(rt["RouteTableId"], {"routes": {}, "subnets": []}, rt)
        want = self.desired(ctx)
        self.update(ctx, actual, {"routes": ({}, want["routes"]), "subnets": ([], want["subnets"])})
        return actual

    def update(self, ctx: Context, actual: Actual, changes) -> None:
        if "routes" in changes:
            old, new = changes["routes"]
            old = old or {}
            for dest, target in new.items():
                key = "NatGatewayId" if str(target).startswith("nat-") else "GatewayId"
                op = "replace_route" if dest in old else "create_route"
                if old.get(dest) != target:
                    ctx.call("ec2", op, RouteTableId=actual.id, DestinationCidrBlock=dest, **{key: target})
            for dest in set(old) - set(new):
                ctx.call("ec2", "delete_route", RouteTableId=actual.id, DestinationCidrBlock=dest)
        if "subnets" in changes:
            old, new = changes["subnets"]
            for subnet in set(new) - set(old or []):
                ctx.call("ec2", "associate_route_table", RouteTableId=actual.id, SubnetId=subnet)
            for assoc in actual.raw.get("Associations", []):
                if assoc.get("SubnetId") and assoc["SubnetId"] not in new:
                    ctx.call("ec2", "disassociate_route_table",
                             AssociationId=assoc["RouteTableAssociationId"])

    @classmethod
    def scan(cls, ctx: Context) -> list[Found]:
        return scan_ec2(ctx, cls.kind, "describe_route_tables", "RouteTables", "RouteTableId")

    @classmethod
    def delete(cls, ctx: Context, found: Found) -> None:
        for assoc in found.extra.get("Associations", []):
            if not assoc.get("Main") and assoc.get("RouteTableAssociationId"):
                ctx.call("ec2", "disassociate_route_table",
                         AssociationId=assoc["RouteTableAssociationId"])
        ctx.call("ec2", "delete_route_table", RouteTableId=found.id)
