"""Checks made before planning, each failing with one line: the zones exist, the instance
types are offered, the machine image exists."""

from __future__ import annotations

from kpyops.clouds.aws.desired import Image
from kpyops.clouds.aws.errors import AwsError
from kpyops.clouds.aws.resource import Context
from kpyops.spec.model import Aws, Cluster

DEBIAN_OWNER = "136693071363"  # the Debian cloud team's AWS account
DEBIAN_12 = "debian-12-amd64-*"


def check_zones(ctx: Context, region: str, zones: list[str]) -> None:
    found = ctx.call("ec2", "describe_availability_zones", AllAvailabilityZones=False)
    known = sorted(z["ZoneName"] for z in found["AvailabilityZones"])
    for z in zones:
        if z not in known:
            raise AwsError(f"unknown zone {z} in region {region} (zones: {', '.join(known) or 'none'})")


def check_instance_types(ctx: Context, region: str, types: list[str]) -> None:
    for t in sorted(set(types)):
        try:
            found = ctx.call("ec2", "describe_instance_types", InstanceTypes=[t])["InstanceTypes"]
        except AwsError as err:
            if "InvalidInstanceType" in err.code:
                found = []
            else:
                raise
        if not found:
            raise AwsError(f"unknown instance type {t} in region {region}")


def find_image(ctx: Context, aws: Aws) -> Image:
    if aws.ami:
        try:
            images = ctx.call("ec2", "describe_images", ImageIds=[aws.ami])["Images"]
        except AwsError as err:
            if "InvalidAMIID" not in err.code:
                raise
            images = []
        if not images:
            raise AwsError(f"machine image {aws.ami} not found in region {aws.region}")
        img = images[0]
    else:
        images = ctx.call("ec2", "describe_images", Owners=[DEBIAN_OWNER], Filters=[
            {"Name": "name", "Values": [DEBIAN_12]},
            {"Name": "architecture", "Values": ["x86_64"]},
            {"Name": "state", "Values": ["available"]},
        ])["Images"]
        if not images:
            raise AwsError(f"no Debian 12 image found in {aws.region}: set spec.aws.ami")
        img = max(images, key=lambda i: i.get("CreationDate", ""))
    return Image(img["ImageId"], img.get("RootDeviceName") or "/dev/xvda")


def instance_types(cluster: Cluster) -> list[str]:
    aws = cluster.spec.aws
    assert aws is not None
    types = [aws.control_plane_instance_type]
    types += [g.instance_type or aws.node_instance_type for g in cluster.spec.node_groups]
    if aws.private_subnets:
        types.append(aws.bastion_instance_type)
    return types


def preflight(ctx: Context, cluster: Cluster) -> Image:
    aws = cluster.spec.aws
    assert aws is not None
    check_zones(ctx, aws.region, aws.zones)
    check_instance_types(ctx, aws.region, instance_types(cluster))
    return find_image(ctx, aws)
