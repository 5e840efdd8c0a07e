"""Security groups, and their ingress rules as a separate resource so that groups can
name each other (control plane <-> nodes) whatever order they are made in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kpyops.clouds.aws.errors import AwsError
from kpyops.clouds.aws.network import enis_using, scan_ec2
from kpyops.clouds.aws.resource import Actual, Context, Found, Pending, Ref, Resource, first


@dataclass(frozen=True)
class Rule:
    """Ingress: protocol ("tcp", "udp", "4" for IP-in-IP, "-1" all), ports, and a source
    (a CIDR string, or ``Ref`` to one of the cluster's security groups)."""

    protocol: str
    from_port: int
    to_port: int
    source: str | Ref

    def render(self, ctx: Context) -> str:
        return rule_text(self.protocol, self.from_port, self.to_port, ctx.resolve(self.source))


def rule_text(protocol: str, from_port: int | None, to_port: int | None, source: Any) -> str:
    ports = "all" if protocol in ("-1", "4") or from_port is None else (
        str(from_port) if from_port == to_port else f"{from_port}-{to_port}"
    )
    name = {"-1": "all", "4": "ipip"}.get(protocol, protocol)
    return f"{name}:{ports} from {source!r}" if isinstance(source, Pending) else f"{name}:{ports} from {source}"


def actual_rules(group: dict) -> list[str]:
    out = []
    for p in group.get("IpPermissions", []):
        proto, lo, hi = p["IpProtocol"], p.get("FromPort"), p.get("ToPort")
        for r in p.get("IpRanges", []):
            out.append(rule_text(proto, lo, hi, r["CidrIp"]))
        for g in p.get("UserIdGroupPairs", []):
            out.append(rule_text(proto, lo, hi, g["GroupId"]))
    return sorted(out)


def permission(protocol: str, lo: int, hi: int, source: str) -> dict:
    p: dict[str, Any] = {"IpProtocol": protocol}
    if protocol != "-1":  # protocols without ports (4) take -1, which EC2 ignores
        p.update(FromPort=lo, ToPort=hi)
    if source.startswith("sg-"):
        p["UserIdGroupPairs"] = [{"GroupId": source}]
    else:
        p["IpRanges"] = [{"CidrIp": source}]
    return p


def parse_rule(text: str) -> tuple[str, int, int, str]:
    head, source = text.split(" from ", 1)
    proto, ports = head.split(":")
    proto = {"all": "-1", "ipip": "4"}.get(proto, proto)
    if ports == "all":
        return proto, -1, -1, source
    lo, _, hi = ports.partition("-")
    return proto, int(lo), int(hi or lo), source


class SecurityGroup(Resource):
    kind = "security-group"
    delete_after = ("instance", "load-balancer", "nat-gateway")

    def _find_raw(self, ctx: Context) -> dict | None:
        return first(ctx.call("ec2", "describe_security_groups",
                              Filters=ctx.owned_filters(self.name))["SecurityGroups"])

    def find(self, ctx: Context) -> Actual | None:
        g = self._find_raw(ctx)
        return Actual(g["GroupId"], {"vpc": g["VpcId"]}, g) if g else None

    def desired(self, ctx: Context) -> dict[str, Any]:
        return {"vpc": ctx.resolve(self.spec["vpc"])}

    def create(self, ctx: Context) -> Actual:
        g = ctx.call("ec2", "create_security_group", GroupName=f"{ctx.cluster}-{self.name}",
                     Description=self.spec["description"], VpcId=ctx.resolve(self.spec["vpc"]),
                     TagSpecifications=ctx.tag_specs("security-group", self.name))
        return Actual(g["GroupId"], self.desired(ctx), g)

    @classmethod
    def scan(cls, ctx: Context) -> list[Found]:
        return scan_ec2(ctx, cls.kind, "describe_security_groups", "SecurityGroups", "GroupId")

    @classmethod
    def delete(cls, ctx: Context, found: Found) -> None:
        # Rules naming other groups would block their deletion: drop ours first.
        # One at a time: a rule naming a group deleted meanwhile is already gone.
        for perm in found.extra.get("IpPermissions") or []:
            try:
                ctx.call("ec2", "revoke_security_group_ingress", GroupId=found.id, IpPermissions=[perm])
            except AwsError as err:
                if not err.code.endswith("NotFound"):
                    raise
        ctx.call("ec2", "delete_security_group", GroupId=found.id)

    @classmethod
    def blockers(cls, ctx: Context, found: Found) -> str:
        return enis_using(ctx, "group-id", found.id)


class SecurityGroupRules(Resource):
    """The ingress rules of one of the cluster's groups (``group`` is its logical name)."""

    kind = "security-group-rules"
    mutable = frozenset({"ingress"})

    def find(self, ctx: Context) -> Actual | None:
        gid = ctx.ids.get(self.spec["group"])
        if not gid:
            return None
        g = ctx.call("ec2", "describe_security_groups", GroupIds=[gid])["SecurityGroups"][0]
        return Actual(gid, {"ingress": actual_rules(g)}, g)

    def desired(self, ctx: Context) -> dict[str, Any]:
        return {"ingress": sorted(r.render(ctx) for r in self.spec["rules"])}

    def create(self, ctx: Context) -> Actual:
        gid = ctx.ids[self.spec["group"]]
        actual = Actual(gid, {"ingress": []})
        self.update(ctx, actual, {"ingress": ([], self.desired(ctx)["ingress"])})
        return actual

    def update(self, ctx: Context, actual: Actual, changes) -> None:
        old, new = changes["ingress"]
        add = [permission(*parse_rule(r)) for r in sorted(set(new) - set(old or []))]
        drop = [permission(*parse_rule(r)) for r in sorted(set(old or []) - set(new))]
        if add:
            ctx.call("ec2", "authorize_security_group_ingress", GroupId=actual.id, IpPermissions=add)
        if drop:
            ctx.call("ec2", "revoke_security_group_ingress", GroupId=actual.id, IpPermissions=drop)
