"""Create -> no-op plan -> add a node -> plan shows exactly that -> apply -> delete -> nothing
left, against a moto server (a real HTTP endpoint)."""

from __future__ import annotations

import json

import boto3
import pytest
from conftest import REGION, diff_paths, moto_state, warm_up
from scan import tagged_resources

from kpyops import lifecycle
from kpyops.clouds.aws import AwsCloud, permissions
from kpyops.clouds.aws.deleter import DeleteTimeout
from kpyops.clouds.aws.inventory import bastion_args
from kpyops.clouds.aws.session import AwsSession
from kpyops.clouds.base import CloudError
from kpyops.spec.io import parse
from kpyops.state import open_store
from kpyops.state.local import LocalStore

pytestmark = pytest.mark.integration


def spec(ami: str, name: str, nodes: int = 2, **aws):
    return parse(
        {
            "metadata": {"name": name},
            "spec": {
                "cloud": "aws",
                "nodeGroups": [{"name": "node", "count": nodes}],
                "aws": {"region": REGION, "zones": ["us-east-1a", "us-east-1b"], "ami": ami, **aws},
            },
        }
    )


@pytest.fixture
def cloud(aws, tmp_path):
    return AwsCloud(LocalStore(tmp_path / "state"), delete_timeout=60)


def summary(changes):
    return sorted((c.action, c.kind, c.name.split(" ")[0]) for c in changes)


def test_create_plan_add_node_apply_delete(cloud, ami, name):
    zone = f"{name}.example.com"
    boto3.client("route53").create_hosted_zone(Name=zone, CallerReference=name)
    c = spec(ami, name, dns={"zone": zone})
    first = cloud.plan(c)
    assert ("create", "vpc", "vpc") in summary(first)
    assert ("create", "instance", "cp-1") in summary(first)
    assert ("create", "dns-record", "dns-api") in summary(first)

    applied = cloud.apply(c)
    assert summary(applied) == summary(first)
    assert cloud.plan(c) == []  # a second run right after changes nothing

    bigger = spec(ami, name, nodes=3, dns={"zone": zone})
    assert summary(cloud.plan(bigger)) == [("create", "instance", "node-3")]
    cloud.apply(bigger)
    assert cloud.plan(bigger) == []

    hosts = cloud.inventory_hosts(bigger)
    assert [h.name for h in hosts] == [f"{name}-{h}" for h in ("cp-1", "node-1", "node-2", "node-3")]
    assert hosts[0].groups == ["kube_control_plane", "etcd"]
    assert all(h.address.startswith("172.20.") and h.ssh_host != h.address for h in hosts)
    assert cloud.api_endpoint(bigger) == f"api.{name}.{zone}"

    # Fewer nodes: the plan deletes exactly the extra machine
    assert summary(cloud.plan(c)) == [("delete", "instance", "node-3")]

    before = tagged_resources(name)
    assert any(r.startswith("instance:") for r in before)
    to_delete = cloud.plan_delete(bigger)
    assert {ch.kind for ch in to_delete} >= {
        "vpc",
        "subnet",
        "internet-gateway",
        "route-table",
        "security-group",
        "iam-role",
        "instance-profile",
        "key-pair",
        "launch-template",
        "instance",
        "load-balancer",
        "target-group",
        "dns-record",
    }
    # The record goes too, even with the spec no longer naming it
    no_dns = spec(ami, name, nodes=3)
    assert ("delete", "dns-record", "dns-api") in summary(cloud.plan_delete(no_dns))
    cloud.delete(no_dns)
    assert tagged_resources(name) == []
    assert cloud.plan_delete(bigger) == []


def test_machines_are_hardened_as_the_spec_says(cloud, ami, name):
    c = spec(ami, name, nodes=1, adminCIDRs=["203.0.113.0/24"], sshCIDRs=["198.51.100.7/32"])
    cloud.apply(c)
    ec2 = boto3.client("ec2")
    lts = [lt for lt in ec2.describe_launch_templates()["LaunchTemplates"]
           if lt["LaunchTemplateName"].startswith(f"kpyops-{name}-")]
    assert len(lts) == 2
    for lt in lts:
        data = ec2.describe_launch_template_versions(LaunchTemplateId=lt["LaunchTemplateId"])[
            "LaunchTemplateVersions"
        ][0]["LaunchTemplateData"]
        assert data["MetadataOptions"]["HttpTokens"] == "required"
        assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
        assert data["BlockDeviceMappings"][0]["Ebs"]["Encrypted"] is True
        assert data["BlockDeviceMappings"][0]["Ebs"]["VolumeType"] == "gp3"
    groups = {g["GroupName"]: g for g in ec2.describe_security_groups()["SecurityGroups"]}
    etcd = groups[f"{name}-sg-etcd"]["IpPermissions"]
    assert [
        (p["FromPort"], p["ToPort"], [g["GroupId"] for g in p["UserIdGroupPairs"]]) for p in etcd
    ] == [(2379, 2380, [groups[f"{name}-sg-control-plane"]["GroupId"]])]
    ssh_sources = {
        r["CidrIp"]
        for g in groups.values()
        for p in g["IpPermissions"]
        if p.get("FromPort") == 22
        for r in p["IpRanges"]
    }
    assert ssh_sources == {"198.51.100.7/32"}
    # A changed admin CIDR is a modification of exactly that rule set
    changed = spec(ami, name, nodes=1, adminCIDRs=["192.0.2.0/24"], sshCIDRs=["198.51.100.7/32"])
    plan = cloud.plan(changed)
    assert summary(plan) == [("modify", "security-group-rules", "rules-sg-control-plane")]
    old, new = plan[0].fields["ingress"]
    assert set(old) - set(new) == {"tcp:6443 from 203.0.113.0/24"}
    assert set(new) - set(old) == {"tcp:6443 from 192.0.2.0/24"}
    cloud.apply(changed)
    assert cloud.plan(changed) == []
    cloud.delete(changed)
    assert tagged_resources(name) == []


def bucket_snapshot(bucket: str) -> list[tuple[str, str, bytes]]:
    s3 = boto3.client("s3")
    versions = s3.list_object_versions(Bucket=bucket)
    out = [(v["Key"], v["VersionId"], s3.get_object(Bucket=bucket, Key=v["Key"],
                                                     VersionId=v["VersionId"])["Body"].read())
           for v in versions.get("Versions", [])]
    out += [(m["Key"], m["VersionId"], b"<delete marker>") for m in versions.get("DeleteMarkers", [])]
    return sorted(out)


def test_a_plan_changes_nothing_on_the_endpoint_or_in_the_store(ami, aws, tmp_path, name, monkeypatch):
    """`update cluster` without --yes (lifecycle.plan), plan_delete and the inventory read
    leave every resource of the endpoint, and the S3 state store on it, byte for byte."""
    monkeypatch.setenv("HOME", str(tmp_path))  # work folders of remote stores
    bucket = f"kpyops-plan-{name}"
    store = open_store(f"s3://{bucket}/state")
    user = spec(ami, name)
    lifecycle.create(store, user, lambda _m: None)
    cloud = AwsCloud(store, delete_timeout=60)
    warm_up()

    def everything():
        # moto's dump lists the S3 model objects still in its memory, superseded ones too
        # until they are garbage-collected; S3 is compared through its API instead: every
        # version of every object, byte for byte, and every delete marker.
        resources = json.loads(moto_state(aws))
        resources.pop("s3")
        return resources, bucket_snapshot(bucket)

    def unchanged(before):
        after = everything()
        changed = diff_paths(before[0], after[0])
        assert not changed, "\n".join(c[:150] for c in changed)
        assert after == before

    before = everything()
    assert ("create", "vpc", "vpc") in summary(lifecycle.plan(store, user).cloud)
    cloud.plan_delete(user)
    cloud.inventory_hosts(user)
    unchanged(before)

    with store.lock(name, purpose="test apply"):
        cloud.apply(user)
    bigger = spec(ami, name, nodes=4)
    before = everything()
    assert summary(lifecycle.plan(store, bigger).cloud) == [
        ("create", "instance", "node-3"), ("create", "instance", "node-4")]
    assert summary(cloud.plan_delete(bigger)) and cloud.inventory_hosts(bigger)
    unchanged(before)
    cloud.delete(user)
    assert tagged_resources(name) == []


def test_private_subnets_with_nat_and_bastion(cloud, ami, name):
    c = spec(ami, name, nodes=1, privateSubnets=True)
    cloud.apply(c)
    assert cloud.plan(c) == []
    ec2 = boto3.client("ec2")
    nats = [n for n in ec2.describe_nat_gateways()["NatGateways"] if n["State"] == "available"
            and {"Key": "kpyops.io/cluster", "Value": name} in n.get("Tags", [])]
    assert len(nats) == 2
    hosts = cloud.inventory_hosts(c)
    assert [h.name for h in hosts] == [f"{name}-cp-1", f"{name}-node-1"]
    bastion = next(
        i
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
        if {"Key": "kpyops.io/role", "Value": "bastion"} in i["Tags"]
        and {"Key": "kpyops.io/cluster", "Value": name} in i["Tags"]
        and i["State"]["Name"] == "running"
    )
    for h in hosts:
        assert h.ssh_host == h.address  # private: reached through the bastion
        assert h.vars["ansible_ssh_common_args"] == bastion_args("admin", bastion["PublicIpAddress"])
    cloud.delete(c)
    assert tagged_resources(name) == []


def test_an_existing_vpc_is_shared_and_never_deleted(cloud, ami, name):
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.50.0.0/16")["Vpc"]["VpcId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    c = spec(ami, name, nodes=1, vpcID=vpc, cidr="10.50.64.0/18")
    cloud.apply(c)
    tags = {t["Key"]: t["Value"] for t in ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["Tags"]}
    assert tags[f"kubernetes.io/cluster/{name}"] == "shared"
    assert cloud.plan(c) == []
    assert [ch.action for ch in cloud.plan_delete(c) if ch.kind == "vpc"] == ["untag"]
    cloud.delete(c)
    assert ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["VpcId"] == vpc
    assert ec2.describe_internet_gateways(InternetGatewayIds=[igw])["InternetGateways"]
    assert tagged_resources(name) == []


def test_delete_names_what_blocks_it_and_stops_after_the_time_limit(aws, ami, tmp_path, name):
    cloud = AwsCloud(LocalStore(tmp_path / "state"), delete_timeout=3)
    c = spec(ami, name, nodes=1)
    cloud.apply(c)
    ec2 = boto3.client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "tag:kpyops.io/cluster", "Values": [name]}])["Vpcs"][0]
    # Something kpyops did not make, inside the cluster's network (kops#13612)
    subnet = ec2.create_subnet(VpcId=vpc["VpcId"], CidrBlock="172.20.250.0/24")["Subnet"]
    eni = ec2.create_network_interface(SubnetId=subnet["SubnetId"],
                                       Description="left by someone else")["NetworkInterface"]
    with pytest.raises(DeleteTimeout) as err:
        cloud.delete(c)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith("delete stopped after 3s with 1 resources left")
    assert f"blocked by vpc vpc ({vpc['VpcId']})" in text
    assert "DependencyViolation" in text
    assert eni["NetworkInterfaceId"] in text and "left by someone else" in text
    assert subnet["SubnetId"] in text
    # Everything that could go went; once the stranger's objects are gone, delete finishes
    assert [r for r in tagged_resources(name) if vpc["VpcId"] not in r] == []
    ec2.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])
    ec2.delete_subnet(SubnetId=subnet["SubnetId"])
    cloud.delete(c)
    assert tagged_resources(name) == []


def test_doctor_checks_every_action_a_whole_life_uses(aws, ami, name, tmp_path):
    """Create, change, shrink, plan and delete: each IAM action called is one doctor checks,
    so what one can create, one can also delete (kops#7203)."""
    sessions: list[AwsSession] = []

    def recording(region, **kw):
        sessions.append(AwsSession(region, **kw))
        return sessions[-1]

    zone = f"{name}.example.org"
    boto3.client("route53").create_hosted_zone(Name=zone, CallerReference=name)
    cloud = AwsCloud(LocalStore(tmp_path / "state"), session_factory=recording, delete_timeout=60)
    c = spec(ami, name, nodes=1, privateSubnets=True, dns={"zone": zone})
    cloud.apply(c)
    cloud.apply(spec(ami, name, nodes=2, privateSubnets=True, dns={"zone": zone},
                     adminCIDRs=["192.0.2.0/24"], controlPlaneInstanceType="t3.large"))
    cloud.apply(c)
    cloud.plan(c)
    cloud.inventory_hosts(c)
    cloud.delete(c)
    used = set().union(*(s.called for s in sessions))
    assert {"ec2:CreateVpc", "ec2:DeleteVpc", "ec2:CreateLaunchTemplateVersion",
            "ec2:TerminateInstances", "route53:ChangeResourceRecordSets"} <= used
    assert used - set(permissions.all_actions()) == set()
    assert tagged_resources(name) == []


@pytest.mark.parametrize(("bad", "words"), [
    ({"zones": ["us-east-1a", "us-east-1q"]}, "unknown zone us-east-1q"),
    ({"nodeInstanceType": "t9.nonsense"}, "unknown instance type t9.nonsense"),
    ({"ami": "ami-0123456789abcdef0"}, "machine image ami-0123456789abcdef0 not found"),
])
def test_create_checks_the_clouds_facts_before_storing_anything(ami, aws, tmp_path, name, bad, words):
    """A wrong zone, instance type or image is said by create; nothing is stored, so fixing
    the file and running again works."""
    store = LocalStore(tmp_path / "state")
    with pytest.raises(CloudError, match=words):
        lifecycle.create(store, spec(**{"ami": ami, "name": name, **bad}), lambda _m: None)
    assert store.clusters() == [] and not (tmp_path / "state" / "clusters" / name).exists()
    lifecycle.create(store, spec(ami, name), lambda _m: None)  # fixed: goes through
    assert store.clusters() == [name]
    assert tagged_resources(name) == []  # create (without --yes) made nothing in the cloud


def test_a_cluster_of_the_same_name_in_another_store_never_touches_the_first(ami, aws, tmp_path, name):
    """Resources carry the cluster's id in its store: a second store's cluster of the same
    name can neither be created over them nor plan, adopt or delete them."""
    one, two = LocalStore(tmp_path / "one"), LocalStore(tmp_path / "two")
    lifecycle.create(one, spec(ami, name), lambda _m: None)
    lifecycle.create(two, spec(ami, name), lambda _m: None)  # before the first has resources
    first = AwsCloud(one, delete_timeout=60)
    first.apply(lifecycle.load_cluster(one, name))
    owner = one.read_text(name, "cluster-id").strip()
    assert owner != two.read_text(name, "cluster-id").strip()
    made = tagged_resources(name)
    assert made
    vpc = boto3.client("ec2").describe_vpcs(Filters=[{"Name": "tag:kpyops.io/cluster", "Values": [name]}])
    assert {t["Key"]: t["Value"] for t in vpc["Vpcs"][0]["Tags"]}["kpyops.io/owner"] == owner

    second = AwsCloud(two, delete_timeout=60)
    theirs = lifecycle.load_cluster(two, name)
    for step in (second.plan, second.apply, second.plan_delete, second.delete):
        with pytest.raises(CloudError, match="kept in another state store"):
            step(theirs)
    assert tagged_resources(name) == made  # untouched
    third = LocalStore(tmp_path / "three")
    with pytest.raises(CloudError, match="already has resources in this account"):
        lifecycle.create(third, spec(ami, name), lambda _m: None)
    assert third.clusters() == []
    first.delete(lifecycle.load_cluster(one, name))
    assert tagged_resources(name) == []
