"""Machines: the SSH key pair, launch templates (IMDSv2 only, hop limit 1, encrypted gp3
root volumes), instances, and the volumes left tagged for the cluster."""

from __future__ import annotations

import time
from typing import Any

from kpyops.clouds.aws.errors import AwsError
from kpyops.clouds.aws.network import scan_ec2
from kpyops.clouds.aws.resource import (
    TAG_RESOURCE,
    Actual,
    Context,
    Found,
    Resource,
    first,
    k8s_tag,
    tag_dict,
)

TAG_ROLE = "kpyops.io/role"  # control-plane | node | bastion
TAG_GROUP = "kpyops.io/node-group"
LIVE_STATES = ["pending", "running", "stopping", "stopped"]


class KeyPair(Resource):
    """The cluster's SSH key; the private half stays in the state store."""

    kind = "key-pair"

    def find(self, ctx: Context) -> Actual | None:
        k = first(ctx.call("ec2", "describe_key_pairs", Filters=ctx.owned_filters(self.name))["KeyPairs"])
        return Actual(k["KeyName"], {"keyName": k["KeyName"]}, k) if k else None

    def desired(self, ctx: Context) -> dict[str, Any]:
        return {"keyName": self.spec["key_name"]}

    def create(self, ctx: Context) -> Actual:
        public_key = self.spec["public_key"]()  # made at apply, never during a plan
        ctx.call("ec2", "import_key_pair", KeyName=self.spec["key_name"],
                 PublicKeyMaterial=public_key.encode(),
                 TagSpecifications=ctx.tag_specs("key-pair", self.name))
        return Actual(self.spec["key_name"], self.desired(ctx))

    @classmethod
    def scan(cls, ctx: Context) -> list[Found]:
        return [
            Found(cls.kind, k["KeyName"], tag_dict(k.get("Tags")).get(TAG_RESOURCE, ""), extra=k)
            for k in ctx.call("ec2", "describe_key_pairs", Filters=ctx.owned_filters())["KeyPairs"]
        ]

    @classmethod
    def delete(cls, ctx: Context, found: Found) -> None:
        ctx.call("ec2", "delete_key_pair", KeyName=found.id)


class LaunchTemplate(Resource):
    kind = "launch-template"
    mutable = frozenset({"image", "instanceType", "instanceProfile", "securityGroups", "keyName",
                         "httpTokens", "hopLimit", "rootVolume"})

    def find(self, ctx: Context) -> Actual | None:
        lt = first(ctx.call("ec2", "describe_launch_templates",
                            Filters=ctx.owned_filters(self.name))["LaunchTemplates"])
        if lt is None:
            return None
        v = ctx.call("ec2", "describe_launch_template_versions", LaunchTemplateId=lt["LaunchTemplateId"],
                     Versions=["$Default"])["LaunchTemplateVersions"][0]["LaunchTemplateData"]
        meta = v.get("MetadataOptions", {})
        ebs = (first(v.get("BlockDeviceMappings", [])) or {}).get("Ebs", {})
        return Actual(lt["LaunchTemplateId"], {
            "image": v.get("ImageId"),
            "instanceType": v.get("InstanceType"),
            "instanceProfile": v.get("IamInstanceProfile", {}).get("Name"),
            "securityGroups": sorted(v.get("SecurityGroupIds", [])),
            "keyName": v.get("KeyName"),
            "httpTokens": meta.get("HttpTokens"),
            "hopLimit": meta.get("HttpPutResponseHopLimit"),
            "rootVolume": _volume_text(ebs),
        }, lt)

    def desired(self, ctx: Context) -> dict[str, Any]:
        s = self.spec
        return {
            "image": s["image"],
            "instanceType": s["instance_type"],
            "instanceProfile": s.get("profile"),
            "securityGroups": ctx.resolve(s["security_groups"]),
            "keyName": s["key_name"],
            "httpTokens": "required",
            "hopLimit": 1,
            "rootVolume": _volume_text({"VolumeSize": s["volume_size"], "VolumeType": "gp3",
                                        "Encrypted": True}),
        }

    def _data(self, ctx: Context) -> dict:
        s = self.spec
        data: dict[str, Any] = {
            "ImageId": s["image"],
            "InstanceType": s["instance_type"],
            "SecurityGroupIds": ctx.resolve(s["security_groups"]),
            "KeyName": s["key_name"],
            "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1,
                                "HttpEndpoint": "enabled"},
            "BlockDeviceMappings": [{
                "DeviceName": s["root_device"],
                "Ebs": {"VolumeSize": s["volume_size"], "VolumeType": "gp3", "Encrypted": True,
                        "DeleteOnTermination": True},
            }],
        }
        if s.get("profile"):
            data["IamInstanceProfile"] = {"Name": s["profile"]}
        return data

    def create(self, ctx: Context) -> Actual:
        lt = ctx.call("ec2", "create_launch_template", LaunchTemplateName=self.spec["lt_name"],
                      LaunchTemplateData=self._data(ctx),
                      TagSpecifications=ctx.tag_specs("launch-template", self.name))["LaunchTemplate"]
        return Actual(lt["LaunchTemplateId"], self.desired(ctx), lt)

    def update(self, ctx: Context, actual: Actual, changes) -> None:
        # A new version becomes the default; running machines keep theirs until replaced.
        v = ctx.call("ec2", "create_launch_template_version", LaunchTemplateId=actual.id,
                     LaunchTemplateData=self._data(ctx))["LaunchTemplateVersion"]
        ctx.call("ec2", "modify_launch_template", LaunchTemplateId=actual.id,
                 DefaultVersion=str(v["VersionNumber"]))

    @classmethod
    def scan(cls, ctx: Context) -> list[Found]:
        return scan_ec2(ctx, cls.kind, "describe_launch_templates", "LaunchTemplates",
                         "LaunchTemplateId")

    @classmethod
    def delete(cls, ctx: Context, found: Found) -> None:
        ctx.call("ec2", "delete_launch_template", LaunchTemplateId=found.id)


def _volume_text(ebs: dict) -> str:
    enc = "encrypted" if ebs.get("Encrypted") else "unencrypted"
    return f"{ebs.get('VolumeSize')}GiB {ebs.get('VolumeType')} {enc}"


class Instance(Resource):
    """One machine, started from its launch template's default version."""

    kind = "instance"

    def find(self, ctx: Context) -> Actual | None:
        filters = [*ctx.owned_filters(self.name),
                   {"Name": "instance-state-name", "Values": LIVE_STATES}]
        for r in ctx.call("ec2", "describe_instances", Filters=filters)["Reservations"]:
            for i in r["Instances"]:
                return Actual(i["InstanceId"], {"subnet": i.get("SubnetId")}, i)
        return None

    def desired(self, ctx: Context) -> dict[str, Any]:
        return {"subnet": ctx.resolve(self.spec["subnet"])}

    def create(self, ctx: Context) -> Actual:
        tags = ctx.tag_list(self.name)
        tags.append({"Key": TAG_ROLE, "Value": self.spec["role"]})
        if self.spec.get("group"):
            tags.append({"Key": TAG_GROUP, "Value": self.spec["group"]})
        kwargs = dict(
            LaunchTemplate={"LaunchTemplateId": ctx.resolve(self.spec["launch_template"]),
                            "Version": "$Default"},
            SubnetId=ctx.resolve(self.spec["subnet"]),
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags},
                               {"ResourceType": "volume", "Tags": tags}],
        )
        # A new instance profile takes a few seconds to reach EC2: retry that one error.
        deadline = time.monotonic() + 120
        while True:
            try:
                i = ctx.call("ec2", "run_instances", **kwargs)["Instances"][0]
                return Actual(i["InstanceId"], {"subnet": i.get("SubnetId")}, i)
            except AwsError as err:
                if "iamInstanceProfile" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(5)

    @classmethod
    def scan(cls, ctx: Context) -> list[Found]:
        filters = [*ctx.owned_filters(),
                   {"Name": "instance-state-name", "Values": [*LIVE_STATES, "shutting-down"]}]
        out = []
        for r in ctx.pages("ec2", "describe_instances", "Reservations", Filters=filters):
            for i in r["Instances"]:
                state = i["State"]["Name"]
                out.append(Found(cls.kind, i["InstanceId"],
                                 tag_dict(i.get("Tags")).get(TAG_RESOURCE, i["InstanceId"]),
                                 state="shutting-down" if state == "shutting-down" else "", extra=i))
        return out

    @classmethod
    def delete(cls, ctx: Context, found: Found) -> None:
        ctx.call("ec2", "terminate_instances", InstanceIds=[found.id])


class Volume(Resource):
    """EBS volumes tagged for the cluster (root volumes go with their instance; volumes a
    cluster made for its own use are tagged kubernetes.io/cluster/NAME=owned)."""

    kind = "volume"
    delete_after = ("instance",)

    def find(self, ctx: Context) -> Actual | None:  # never desired
        return None

    def desired(self, ctx: Context) -> dict[str, Any]:
        return {}

    def create(self, ctx: Context) -> Actual:
        raise AwsError("volumes are not created by kpyops")

    @classmethod
    def scan(cls, ctx: Context) -> list[Found]:
        seen: dict[str, Found] = {}
        for filters in (ctx.owned_filters(),
                        [{"Name": f"tag:{k8s_tag(ctx.cluster)}", "Values": ["owned"]}]):
            for v in ctx.pages("ec2", "describe_volumes", "Volumes", Filters=filters):
                if v["State"] in ("deleting", "deleted"):
                    continue
                seen[v["VolumeId"]] = Found(cls.kind, v["VolumeId"],
                                            tag_dict(v.get("Tags")).get(TAG_RESOURCE, v["VolumeId"]),
                                            extra=v)
        return list(seen.values())

    @classmethod
    def delete(cls, ctx: Context, found: Found) -> None:
        ctx.call("ec2", "delete_volume", VolumeId=found.id)
