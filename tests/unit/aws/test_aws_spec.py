"""The aws part of the spec: validation and completion."""

from __future__ import annotations

import ipaddress

import pytest

from kpyops.spec.complete import complete
from kpyops.spec.errors import SpecError
from kpyops.spec.io import parse


def aws_cluster(**aws):
    return parse({"metadata": {"name": "demo"},
                  "spec": {"cloud": "aws", "aws": {"region": "eu-west-1", **aws}}})


def test_completion_fills_every_aws_default():
    c = complete(aws_cluster())
    a = c.spec.aws
    assert a.zones == ["eu-west-1a"]
    assert a.cidr == ipaddress.IPv4Network("172.20.0.0/16")
    assert c.spec.ssh.user == "admin"
    assert c.spec.control_plane.count == 1
    assert [(g.name, g.count, g.instance_type) for g in c.spec.node_groups] == [
        ("node", 2, "t3.medium")
    ]
    assert not c.spec.control_plane.hosts  # machines are counted, not listed
    assert complete(c) == c  # idempotent


def test_dns_record_defaults_and_becomes_the_api_address():
    c = complete(aws_cluster(dns={"zone": "example.com"}))
    assert c.spec.aws.dns.record == "api.demo.example.com"
    assert c.spec.control_plane.api_load_balancer.type == "external"
    assert c.spec.control_plane.api_load_balancer.address == "api.demo.example.com"


@pytest.mark.parametrize(
    ("aws", "message"),
    [
        ({"zones": ["us-east-1a"]}, "not in region eu-west-1"),
        ({"zones": ["eu-west-1"]}, "not an availability zone"),
        ({"vpcID": "vpc-0abc"}, "vpcID needs cidr"),
        ({"cidr": "10.0.0.0/8"}, "between /16 and /24"),
        ({"adminCIDRs": ["not-a-cidr"]}, "adminCIDRs"),
        ({"controlPlaneInstanceType": "large"}, "controlPlaneInstanceType"),
    ],
)
def test_invalid_aws_settings_are_refused(aws, message):
    with pytest.raises(SpecError, match=message):
        aws_cluster(**aws)


def test_aws_needs_its_section():
    with pytest.raises(SpecError, match=r"spec\.aws"):
        complete(parse({"metadata": {"name": "demo"}, "spec": {"cloud": "aws"}}))


def test_vpc_range_must_not_overlap_pods():
    with pytest.raises(SpecError, match="overlaps podCIDR"):
        complete(aws_cluster(cidr="10.244.0.0/16"))


def test_hosts_are_not_listed_on_aws():
    c = parse({"metadata": {"name": "demo"}, "spec": {
        "cloud": "aws", "aws": {"region": "eu-west-1"},
        "nodeGroups": [{"name": "node", "hosts": [{"name": "n1", "address": "10.0.0.5"}]}]}})
    with pytest.raises(SpecError, match="counted"):
        complete(c)


def test_create_takes_the_region_from_the_standard_aws_settings(monkeypatch, tmp_path):
    from kpyops.clouds.aws.cloud import AwsCloud
    from kpyops.spec import SpecError, complete, parse
    from kpyops.state import LocalStore

    user = parse({"metadata": {"name": "demo"}, "spec": {"cloud": "aws"}})
    cloud = AwsCloud(LocalStore(tmp_path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    assert cloud.choose(user) is user  # nothing to take it from: completion says what is missing
    import pytest

    with pytest.raises(SpecError, match="AWS_REGION"):
        complete(user)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    assert cloud.choose(user).spec.aws.region == "eu-west-3"
    monkeypatch.setenv("AWS_REGION", "eu-north-1")  # AWS_REGION first, as the AWS SDKs do
    chosen = cloud.choose(user)
    assert chosen.spec.aws.region == "eu-north-1" and user.spec.aws is None
    assert complete(chosen).spec.aws.zones == ["eu-north-1a"]
    given = parse({"metadata": {"name": "demo"}, "spec": {"cloud": "aws", "aws": {"region": "us-east-2"}}})
    assert cloud.choose(given) is given
