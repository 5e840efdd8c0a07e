"""IAM roles and instance profiles for the machines, with least-privilege inline policies.

Roles live under the path /kpyops/ so that a scan lists only ours (never every role in the
account, kops#7111), and carry the cluster's tags.
"""

from __future__ import annotations

import json
import urllib.parse
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
    tag_dict,
)

PATH = "/kpyops/"
ASSUME_EC2 = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}
POLICY_NAME = "kpyops"


def node_policy(cluster: str) -> dict:
    """What the kubelet and the EBS CSI node plugin need: read the instance's own facts."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Describe",
                "Effect": "Allow",
                "Action": ["ec2:DescribeInstances", "ec2:DescribeRegions", "ec2:DescribeAvailabilityZones"],
                "Resource": "*",
            }
        ],
    }


def control_plane_policy(cluster: str) -> dict:
    """The cloud controller and EBS CSI controller: volumes and load balancers, where
    possible only on resources tagged for this cluster."""
    owned = {"StringEquals": {f"aws:ResourceTag/kubernetes.io/cluster/{cluster}": "owned"}}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Describe",
                "Effect": "Allow",
                "Action": [
                    "ec2:Describe*",
                    "elasticloadbalancing:Describe*",
                ],
                "Resource": "*",
            },
            {
                "Sid": "CreateTagged",
                "Effect": "Allow",
                "Action": [
                    "ec2:CreateVolume",
                    "ec2:CreateSnapshot",
                    "ec2:CreateSecurityGroup",
                    "elasticloadbalancing:CreateLoadBalancer",
                    "elasticloadbalancing:CreateTargetGroup",
                ],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {f"aws:RequestTag/kubernetes.io/cluster/{cluster}": "owned"}
                },
            },
            {"Sid": "Tag", "Effect": "Allow", "Action": ["ec2:CreateTags"], "Resource": "*",
             "Condition": {"StringEquals": {"ec2:CreateAction": [
                 "CreateVolume", "CreateSnapshot", "CreateSecurityGroup"]}}},
            {
                "Sid": "ManageOwned",
                "Effect": "Allow",
                "Action": [
                    "ec2:AttachVolume",
                    "ec2:DetachVolume",
                    "ec2:DeleteVolume",
                    "ec2:ModifyVolume",
                    "ec2:DeleteSnapshot",
                    "ec2:AuthorizeSecurityGroupIngress",
                    "ec2:RevokeSecurityGroupIngress",
                    "ec2:DeleteSecurityGroup",
                    "ec2:ModifyInstanceAttribute",
                    "elasticloadbalancing:*",
                ],
                "Resource": "*",
                "Condition": owned,
            },
        ],
    }


class IamRole(Resource):
    kind = "iam-role"
    mutable = frozenset({"assumeRolePolicy", "policy"})
    delete_after = ("instance-profile",)

    def find(self, ctx: Context) -> Actual | None:
        try:
            role = ctx.call("iam", "get_role", RoleName=self.spec["role_name"])["Role"]
        except AwsError as err:
            if err.code == "NoSuchEntity":
                return None
            raise
        tags = tag_dict(ctx.call("iam", "list_role_tags", RoleName=role["RoleName"]).get("Tags"))
        if not ctx.owns_tags(tags):
            raise AwsError(f"IAM role {role['RoleName']} exists but is not this cluster's "
                           f"(tags {TAG_CLUSTER}={tags.get(TAG_CLUSTER)!r}, {TAG_OWNER}="
                           f"{tags.get(TAG_OWNER)!r}); refusing to adopt it")
        try:
            policy = ctx.call("iam", "get_role_policy", RoleName=role["RoleName"],
                              PolicyName=POLICY_NAME)["PolicyDocument"]
        except AwsError as err:
            if err.code != "NoSuchEntity":
                raise
            policy = None
        return Actual(role["RoleName"], {
            "assumeRolePolicy": _doc(role["AssumeRolePolicyDocument"]),
            "policy": _doc(policy) if policy is not None else None,
        }, role)

    def desired(self, ctx: Context) -> dict[str, Any]:
        return {"assumeRolePolicy": ASSUME_EC2, "policy": self.spec["policy"]}

    def create(self, ctx: Context) -> Actual:
        name = self.spec["role_name"]
        ctx.call("iam", "create_role", RoleName=name, Path=PATH,
                 AssumeRolePolicyDocument=json.dumps(ASSUME_EC2), Tags=ctx.tag_list(self.name),
                 Description=f"kpyops cluster {ctx.cluster}: {self.name}")
        ctx.call("iam", "put_role_policy", RoleName=name, PolicyName=POLICY_NAME,
                 PolicyDocument=json.dumps(self.spec["policy"]))
        return Actual(name, self.desired(ctx))

    def update(self, ctx: Context, actual: Actual, changes) -> None:
        if "assumeRolePolicy" in changes:
            ctx.call("iam", "update_assume_role_policy", RoleName=actual.id,
                     PolicyDocument=json.dumps(ASSUME_EC2))
        if "policy" in changes:
            ctx.call("iam", "put_role_policy", RoleName=actual.id, PolicyName=POLICY_NAME,
                     PolicyDocument=json.dumps(self.spec["policy"]))

    @classmethod
    def scan(cls, ctx: Context) -> list[Found]:
        out = []
        for role in ctx.pages("iam", "list_roles", "Roles", PathPrefix=PATH):
            tags = tag_dict(ctx.call("iam", "list_role_tags", RoleName=role["RoleName"]).get("Tags"))
            if ctx.owns_tags(tags):
                out.append(Found(cls.kind, role["RoleName"], tags.get(TAG_RESOURCE, "")))
        return out

    @classmethod
    def delete(cls, ctx: Context, found: Found) -> None:
        # Policies first, or IAM answers DeleteConflict (kops#9600)
        for name in ctx.pages("iam", "list_role_policies", "PolicyNames", RoleName=found.id):
            ctx.call("iam", "delete_role_policy", RoleName=found.id, PolicyName=name)
        for p in ctx.pages("iam", "list_attached_role_policies", "AttachedPolicies", RoleName=found.id):
            ctx.call("iam", "detach_role_policy", RoleName=found.id, PolicyArn=p["PolicyArn"])
        for prof in ctx.pages("iam", "list_instance_profiles_for_role", "InstanceProfiles",
                              RoleName=found.id):
            ctx.call("iam", "remove_role_from_instance_profile",
                     InstanceProfileName=prof["InstanceProfileName"], RoleName=found.id)
        ctx.call("iam", "delete_role", RoleName=found.id)


class InstanceProfile(Resource):
    kind = "instance-profile"
    mutable = frozenset({"roles"})
    delete_after = ("instance",)

    def find(self, ctx: Context) -> Actual | None:
        try:
            prof = ctx.call("iam", "get_instance_profile",
                            InstanceProfileName=self.spec["profile_name"])["InstanceProfile"]
        except AwsError as err:
            if err.code == "NoSuchEntity":
                return None
            raise
        tags = tag_dict(prof.get("Tags"))  # GetInstanceProfile returns the tags
        if not ctx.owns_tags(tags):
            raise AwsError(f"instance profile {prof['InstanceProfileName']} exists but is not "
                           "this cluster's; refusing to adopt it")
        return Actual(prof["InstanceProfileName"],
                      {"roles": [r["RoleName"] for r in prof.get("Roles", [])]}, prof)

    def desired(self, ctx: Context) -> dict[str, Any]:
        return {"roles": [ctx.resolve(self.spec["role"])]}

    def create(self, ctx: Context) -> Actual:
        name = self.spec["profile_name"]
        ctx.call("iam", "create_instance_profile", InstanceProfileName=name, Path=PATH,
                 Tags=ctx.tag_list(self.name))
        actual = Actual(name, {"roles": []})
        self.update(ctx, actual, {"roles": ([], self.desired(ctx)["roles"])})
        return actual

    def update(self, ctx: Context, actual: Actual, changes) -> None:
        old, new = changes["roles"]
        for role in set(old or []) - set(new):
            ctx.call("iam", "remove_role_from_instance_profile", InstanceProfileName=actual.id,
                     RoleName=role)
        for role in set(new) - set(old or []):
            ctx.call("iam", "add_role_to_instance_profile", InstanceProfileName=actual.id,
                     RoleName=role)

    @classmethod
    def scan(cls, ctx: Context) -> list[Found]:
        out = []
        for prof in ctx.pages("iam", "list_instance_profiles", "InstanceProfiles", PathPrefix=PATH):
            # Listings carry no tags on AWS: ask for each profile under our path
            prof = ctx.call("iam", "get_instance_profile",
                            InstanceProfileName=prof["InstanceProfileName"])["InstanceProfile"]
            tags = tag_dict(prof.get("Tags"))
            if ctx.owns_tags(tags):
                out.append(Found(cls.kind, prof["InstanceProfileName"], tags.get(TAG_RESOURCE, ""),
                                 extra=prof))
        return out

    @classmethod
    def delete(cls, ctx: Context, found: Found) -> None:
        for role in found.extra.get("Roles", []):
            ctx.call("iam", "remove_role_from_instance_profile",
                     InstanceProfileName=found.id, RoleName=role["RoleName"])
        ctx.call("iam", "delete_instance_profile", InstanceProfileName=found.id)


def _doc(value: Any) -> Any:
    """IAM returns policy documents URL-encoded JSON (or already decoded by boto3)."""
    if isinstance(value, str):
        return json.loads(urllib.parse.unquote(value))
    return value
