"""An optional Route53 record naming the API load balancer, in an existing hosted zone.

Records cannot carry tags: the record is the cluster's when it is a CNAME to the cluster's
own load balancer, and only then is it changed or deleted.
"""

from __future__ import annotations

from typing import Any

from kpyops.clouds.aws.errors import AwsError
from kpyops.clouds.aws.resource import Actual, Context, Found, Pending, Resource

TTL = 60
TAG_DNS = "kpyops.io/dns-record"  # on the load balancer: zone|record


def hosted_zone_id(ctx: Context, zone: str) -> str:
    name = zone.rstrip(".") + "."
    zones = ctx.call("route53", "list_hosted_zones_by_name", DNSName=name)["HostedZones"]
    for z in zones:
        if z["Name"] == name:
            return z["Id"].split("/")[-1]
    raise AwsError(f"Route53 hosted zone {zone} not found: create it, or drop spec.aws.dns")


def find_record(ctx: Context, zone_id: str, record: str) -> dict | None:
    name = record.rstrip(".") + "."
    sets = ctx.call("route53", "list_resource_record_sets", HostedZoneId=zone_id,
                    StartRecordName=name, StartRecordType="CNAME", MaxItems="1")
    for rs in sets["ResourceRecordSets"]:
        if rs["Name"] == name and rs["Type"] == "CNAME":
            return rs
    return None


class DnsRecord(Resource):
    kind = "dns-record"
    mutable = frozenset({"value"})

    def _target(self, ctx: Context) -> str | Pending:
        lb = ctx.actuals.get(self.spec["lb"])
        return lb.raw["DNSName"] if lb and lb.raw.get("DNSName") else Pending(self.spec["lb"])

    def find(self, ctx: Context) -> Actual | None:
        zone_id = hosted_zone_id(ctx, self.spec["zone"])
        rs = find_record(ctx, zone_id, self.spec["record"])
        if rs is None:
            return None
        value = rs["ResourceRecords"][0]["Value"] if rs.get("ResourceRecords") else None
        if value and not value.startswith(self.spec["lb_name"] + "-"):
            raise AwsError(f"DNS record {self.spec['record']} exists and points elsewhere "
                           f"({value}); refusing to take it over")
        return Actual(f"{zone_id}/{self.spec['record']}", {"value": value}, rs)

    def desired(self, ctx: Context) -> dict[str, Any]:
        return {"value": self._target(ctx)}

    def _upsert(self, ctx: Context) -> None:
        zone_id = hosted_zone_id(ctx, self.spec["zone"])
        ctx.call("route53", "change_resource_record_sets", HostedZoneId=zone_id, ChangeBatch={
            "Comment": f"kpyops cluster {ctx.cluster}",
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
                "Name": self.spec["record"], "Type": "CNAME", "TTL": TTL,
                "ResourceRecords": [{"Value": self._target(ctx)}]}}],
        })

    def create(self, ctx: Context) -> Actual:
        self._upsert(ctx)
        # Remembered on the load balancer, so that the record is found and deleted even
        # after it left the spec.
        ctx.call("elbv2", "add_tags", ResourceArns=[ctx.ids[self.spec["lb"]]], Tags=[
            {"Key": TAG_DNS, "Value": f"{self.spec['zone']}|{self.spec['record']}"}])
        return Actual(f"{self.spec['zone']}/{self.spec['record']}", self.desired(ctx))

    def update(self, ctx: Context, actual: Actual, changes) -> None:
        self._upsert(ctx)

    @classmethod
    def scan(cls, ctx: Context) -> list[Found]:
        from kpyops.clouds.aws.loadbalancer import LoadBalancer

        places = {ctx.dns} if ctx.dns else set()
        for lb in LoadBalancer.scan(ctx):
            zone, _, record = lb.extra["Tags"].get(TAG_DNS, "").partition("|")
            if record:
                places.add((zone, record, lb.extra["LoadBalancerName"]))
        out = []
        for zone, record, lb_name in sorted(places):
            try:
                zone_id = hosted_zone_id(ctx, zone)
            except AwsError:
                continue
            rs = find_record(ctx, zone_id, record)
            value = rs["ResourceRecords"][0]["Value"] if rs and rs.get("ResourceRecords") else ""
            if value.startswith(lb_name + "-"):  # else not ours
                out.append(Found(cls.kind, f"{zone_id}/{record}", "dns-api",
                                 extra={"zone_id": zone_id, "rs": rs}))
        return out

    @classmethod
    def delete(cls, ctx: Context, found: Found) -> None:
        ctx.call("route53", "change_resource_record_sets", HostedZoneId=found.extra["zone_id"],
                 ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": found.extra["rs"]}]})
