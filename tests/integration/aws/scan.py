"""An independent full scan of every resource type for anything tagged for a cluster.

Written without kpyops' own scanners (and without server-side tag filters), so that a bug
in them cannot hide a leak.
"""

from __future__ import annotations

import boto3


def _tagged(tags, cluster: str) -> bool:
    d = {t["Key"]: t["Value"] for t in tags or []}
    return d.get("kpyops.io/cluster") == cluster or f"kubernetes.io/cluster/{cluster}" in d


def tagged_resources(cluster: str, region: str = "us-east-1") -> list[str]:
    ec2 = boto3.client("ec2", region_name=region)
    out = []
    for op, key, id_key in [
        ("describe_vpcs", "Vpcs", "VpcId"),
        ("describe_subnets", "Subnets", "SubnetId"),
        ("describe_internet_gateways", "InternetGateways", "InternetGatewayId"),
        ("describe_route_tables", "RouteTables", "RouteTableId"),
        ("describe_security_groups", "SecurityGroups", "GroupId"),
        ("describe_addresses", "Addresses", "AllocationId"),
        ("describe_key_pairs", "KeyPairs", "KeyName"),
        ("describe_launch_templates", "LaunchTemplates", "LaunchTemplateId"),
        ("describe_volumes", "Volumes", "VolumeId"),
        ("describe_network_interfaces", "NetworkInterfaces", "NetworkInterfaceId"),
    ]:
        for item in getattr(ec2, op)()[key]:
            if _tagged(item.get("Tags") or item.get("TagSet"), cluster):
                out.append(f"{op}: {item[id_key]}")
    for n in ec2.describe_nat_gateways()["NatGateways"]:
        if n["State"] not in ("deleted",) and _tagged(n.get("Tags"), cluster):
            out.append(f"nat: {n['NatGatewayId']}")
    for r in ec2.describe_instances()["Reservations"]:
        for i in r["Instances"]:
            if i["State"]["Name"] != "terminated" and _tagged(i.get("Tags"), cluster):
                out.append(f"instance: {i['InstanceId']}")
    elb = boto3.client("elbv2", region_name=region)
    arns = [lb["LoadBalancerArn"] for lb in elb.describe_load_balancers()["LoadBalancers"]]
    arns += [tg["TargetGroupArn"] for tg in elb.describe_target_groups()["TargetGroups"]]
    for i in range(0, len(arns), 20):
        for d in elb.describe_tags(ResourceArns=arns[i : i + 20])["TagDescriptions"]:
            if _tagged(d.get("Tags"), cluster):
                out.append(f"elbv2: {d['ResourceArn']}")
    iam = boto3.client("iam", region_name=region)
    for role in iam.list_roles()["Roles"]:
        if _tagged(iam.get_role(RoleName=role["RoleName"])["Role"].get("Tags"), cluster):
            out.append(f"role: {role['RoleName']}")
    for prof in iam.list_instance_profiles()["InstanceProfiles"]:
        p = iam.get_instance_profile(InstanceProfileName=prof["InstanceProfileName"])
        if _tagged(p["InstanceProfile"].get("Tags"), cluster):
            out.append(f"profile: {prof['InstanceProfileName']}")
    r53 = boto3.client("route53", region_name=region)
    for z in r53.list_hosted_zones()["HostedZones"]:
        for rs in r53.list_resource_record_sets(HostedZoneId=z["Id"])["ResourceRecordSets"]:
            if rs["Type"] in ("NS", "SOA"):
                continue  # the zone's own records
            if f".{cluster}." in rs["Name"] or rs["Name"].startswith(f"{cluster}."):
                out.append(f"record: {rs['Name']}")
    tagging = boto3.client("resourcegroupstaggingapi", region_name=region)
    for res in tagging.get_resources(
        TagFilters=[{"Key": "kpyops.io/cluster", "Values": [cluster]}]
    )["ResourceTagMappingList"]:
        arn = res["ResourceARN"]
        if ":instance/" in arn:
            continue  # terminated instances keep their tags; checked above by state
        if ":natgateway/" in arn:
            nat = ec2.describe_nat_gateways(NatGatewayIds=[arn.split("/")[-1]])["NatGateways"]
            if all(n["State"] == "deleted" for n in nat):
                continue  # AWS, too, lists deleted NAT gateways for a while
        out.append(f"tagging-api: {arn}")
    return sorted(set(out))
