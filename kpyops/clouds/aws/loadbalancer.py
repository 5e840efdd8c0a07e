"""The API's network load balancer: TCP 6443 to the control planes."""

from __future__ import annotations

import hashlib
from typing import Any

from kpyops.clouds.aws.errors import AwsError
from kpyops.clouds.aws.resource import (
    TAG_RESOURCE,
    Actual,
    Context,
    Found,
    Ref,
    Resource,
    first,
    tag_dict,
)

NOT_FOUND = ("LoadBalancerNotFound", "TargetGroupNotFound", "ListenerNotFound")


def elb_name(cluster: str, suffix: str) -> str:
    """ELB names are at most 32 characters: shorten long cluster names with a hash."""
    name = f"{cluster}-{suffix}"
    if len(name) <= 32:
        return name
    digest = hashlib.sha256(cluster.encode()).hexdigest()[:6]
    return f"{cluster[: 32 - len(suffix) - 8]}-{digest}-{suffix}"


def _tags(ctx: Context, arns: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for i in range(0, len(arns), 20):
        for d in ctx.call("elbv2", "describe_tags", ResourceArns=arns[i : i + 20])["TagDescriptions"]:
            out[d["ResourceArn"]] = tag_dict(d.get("Tags"))
    return out


def _owned(ctx: Context, arn: str, what: str) -> None:
    tags = _tags(ctx, [arn]).get(arn, {})
    if not ctx.owns_tags(tags):
        raise AwsError(f"{what} exists but is not this cluster's; refusing to adopt it")


def _scan(ctx: Context, kind: str, op: str, key: str, arn_key: str) -> list[Found]:
    items = list(ctx.pages("elbv2", op, key))
    tags = _tags(ctx, [i[arn_key] for i in items]) if items else {}
    return [
        Found(kind, i[arn_key], tags[i[arn_key]].get(TAG_RESOURCE, ""),
              extra={**i, "Tags": tags[i[arn_key]]})
        for i in items
        if ctx.owns_tags(tags.get(i[arn_key], {}))
    ]


class LoadBalancer(Resource):
    kind = "load-balancer"
    mutable = frozenset({"subnets"})
    delete_after = ("dns-record",)

    def find(self, ctx: Context) -> Actual | None:
        try:
            lb = ctx.call("elbv2", "describe_load_balancers", Names=[self.spec["lb_name"]])["LoadBalancers"][0]
        except AwsError as err:
            if err.code in NOT_FOUND:
                return None
            raise
        _owned(ctx, lb["LoadBalancerArn"], f"load balancer {self.spec['lb_name']}")
        return Actual(lb["LoadBalancerArn"], {
            "type": lb["Type"], "scheme": lb["Scheme"],
            "subnets": sorted(z["SubnetId"] for z in lb.get("AvailabilityZones", [])),
        }, lb)

    def desired(self, ctx: Context) -> dict[str, Any]:
        return {"type": "network", "scheme": "internet-facing",
                "subnets": ctx.resolve(self.spec["subnets"])}

    def create(self, ctx: Context) -> Actual:
        lb = ctx.call("elbv2", "create_load_balancer", Name=self.spec["lb_name"],
                      Subnets=ctx.resolve(self.spec["subnets"]), Scheme="internet-facing",
                      Type="network", IpAddressType="ipv4",
                      Tags=ctx.tag_list(self.name))["LoadBalancers"][0]
        return Actual(lb["LoadBalancerArn"], self.desired(ctx), lb)

    def update(self, ctx: Context, actual: Actual, changes) -> None:
        ctx.call("elbv2", "set_subnets", LoadBalancerArn=actual.id, Subnets=changes["subnets"][1])

    @classmethod
    def scan(cls, ctx: Context) -> list[Found]:
        return _scan(ctx, cls.kind, "describe_load_balancers", "LoadBalancers", "LoadBalancerArn")

    @classmethod
    def delete(cls, ctx: Context, found: Found) -> None:
        ctx.call("elbv2", "delete_load_balancer", LoadBalancerArn=found.id)


class TargetGroup(Resource):
    kind = "target-group"
    mutable = frozenset({"targets"})
    delete_after = ("load-balancer",)

    def find(self, ctx: Context) -> Actual | None:
        try:
            tg = ctx.call("elbv2", "describe_target_groups", Names=[self.spec["tg_name"]])["TargetGroups"][0]
        except AwsError as err:
            if err.code in NOT_FOUND:
                return None
            raise
        _owned(ctx, tg["TargetGroupArn"], f"target group {self.spec['tg_name']}")
        health = ctx.call("elbv2", "describe_target_health", TargetGroupArn=tg["TargetGroupArn"])
        targets = sorted(t["Target"]["Id"] for t in health["TargetHealthDescriptions"])
        return Actual(tg["TargetGroupArn"], {
            "protocol": tg["Protocol"], "port": tg["Port"], "vpc": tg["VpcId"], "targets": targets,
        }, tg)

    def desired(self, ctx: Context) -> dict[str, Any]:
        return {"protocol": "TCP", "port": self.spec["port"], "vpc": ctx.resolve(self.spec["vpc"]),
                "targets": ctx.resolve(self.spec["targets"])}

    def create(self, ctx: Context) -> Actual:
        tg = ctx.call("elbv2", "create_target_group", Name=self.spec["tg_name"], Protocol="TCP",
                      Port=self.spec["port"], VpcId=ctx.resolve(self.spec["vpc"]),
                      TargetType="instance", HealthCheckProtocol="TCP",
                      Tags=ctx.tag_list(self.name))["TargetGroups"][0]
        actual = Actual(tg["TargetGroupArn"], {}, tg)
        self.update(ctx, actual, {"targets": ([], ctx.resolve(self.spec["targets"]))})
        return actual

    def update(self, ctx: Context, actual: Actual, changes) -> None:
        old, new = changes["targets"]
        add = sorted(set(new) - set(old or []))
        drop = sorted(set(old or []) - set(new))
        port = self.spec["port"]
        if add:
            ctx.call("elbv2", "register_targets", TargetGroupArn=actual.id,
                     Targets=[{"Id": t, "Port": port} for t in add])
        if drop:
            ctx.call("elbv2", "deregister_targets", TargetGroupArn=actual.id,
                     Targets=[{"Id": t, "Port": port} for t in drop])

    @classmethod
    def scan(cls, ctx: Context) -> list[Found]:
        return _scan(ctx, cls.kind, "describe_target_groups", "TargetGroups", "TargetGroupArn")

    @classmethod
    def delete(cls, ctx: Context, found: Found) -> None:
        ctx.call("elbv2", "delete_target_group", TargetGroupArn=found.id)


class Listener(Resource):
    """TCP 6443 on the load balancer, forwarding to the target group; goes with the LB."""

    kind = "listener"
    mutable = frozenset({"targetGroup"})

    def find(self, ctx: Context) -> Actual | None:
        lb = ctx.ids.get(self.spec["lb"])
        if not lb:
            return None
        listeners = ctx.call("elbv2", "describe_listeners", LoadBalancerArn=lb)["Listeners"]
        lst = first([x for x in listeners if x["Port"] == self.spec["port"]])
        if lst is None:
            return None
        tg = (first(lst.get("DefaultActions", [])) or {}).get("TargetGroupArn")
        return Actual(lst["ListenerArn"], {"protocol": lst["Protocol"], "targetGroup": tg}, lst)

    def desired(self, ctx: Context) -> dict[str, Any]:
        return {"protocol": "TCP", "targetGroup": ctx.resolve(Ref(self.spec["target_group"]))}

    def create(self, ctx: Context) -> Actual:
        want = self.desired(ctx)
        lst = ctx.call("elbv2", "create_listener", LoadBalancerArn=ctx.ids[self.spec["lb"]],
                       Protocol="TCP", Port=self.spec["port"],
                       DefaultActions=[{"Type": "forward", "TargetGroupArn": want["targetGroup"]}])
        return Actual(lst["Listeners"][0]["ListenerArn"], want)

    def update(self, ctx: Context, actual: Actual, changes) -> None:
        ctx.call("elbv2", "modify_listener", ListenerArn=actual.id,
                 DefaultActions=[{"Type": "forward", "TargetGroupArn": changes["targetGroup"][1]}])
