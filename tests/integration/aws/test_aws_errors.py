"""Bad credentials, missing permissions, an unknown zone or instance type: one clear line
each and a non-zero exit. Permissions are enforced by a moto server with IAM auth on."""

from __future__ import annotations

import json
import urllib.request

import boto3
import pytest
import yaml
from click.testing import CliRunner
from conftest import REGION, aws_environment, register_image, start_moto

from kpyops.cli.doctor import command as doctor
from kpyops.clouds.aws import AwsCloud, AwsError
from kpyops.clouds.aws.errors import BadCredentials, MissingPermission
from kpyops.spec.io import parse
from kpyops.state.local import LocalStore

pytestmark = pytest.mark.integration

READ_ONLY_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", "Action": [
    "sts:GetCallerIdentity", "ec2:Describe*", "iam:Get*", "iam:List*",
    "elasticloadbalancing:Describe*", "route53:List*"]}]}
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@pytest.fixture(scope="module")
def auth_server():
    """A moto server that checks every request's key and the user's IAM policies."""
    proc, url = start_moto()
    iam = boto3.client("iam", endpoint_url=url, region_name=REGION,
                       aws_access_key_id="AKIABOOTSTRAP0000000", aws_secret_access_key="bootstrap")
    keys = {}
    for user, policy in (("reader", READ_ONLY_POLICY), ("admin", ADMIN_POLICY)):
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(policy))
        k = iam.create_access_key(UserName=user)["AccessKey"]
        keys[user] = (k["AccessKeyId"], k["SecretAccessKey"])
    boto3.client("ec2", endpoint_url=url, region_name=REGION, aws_access_key_id="AKIABOOTSTRAP0000000",
                 aws_secret_access_key="bootstrap").describe_vpcs()  # build the EC2 backend now
    urllib.request.urlopen(urllib.request.Request(
        f"{url}/moto-api/reset-auth", data=b"0", method="POST",
        headers={"Content-Type": "text/plain"})).read()  # from now on, every request is checked
    yield url, keys
    proc.terminate()
    proc.wait(timeout=10)


def spec_data(ami: str | None, name: str = "errs", **aws) -> dict:
    image = {"ami": ami} if ami else {}
    return {"metadata": {"name": name}, "spec": {"cloud": "aws", "nodeGroups": [{"name": "node", "count": 1}],
            "aws": {"region": REGION, **image, **aws}}}


def ami_of(url: str, keys) -> str:
    ec2 = boto3.client("ec2", endpoint_url=url, region_name=REGION, aws_access_key_id=keys["admin"][0],
                       aws_secret_access_key=keys["admin"][1])
    found = ec2.describe_images(Owners=["self"])["Images"]
    return found[0]["ImageId"] if found else register_image(ec2)


def one_line(text: str) -> str:
    lines = [x for x in text.strip().splitlines() if x.strip()]
    assert len(lines) == 1, text
    return lines[0]


def test_bad_credentials_give_one_line(auth_server, monkeypatch, tmp_path):
    url, keys = auth_server
    ami = ami_of(url, keys)
    aws_environment(monkeypatch, url, key_id="AKIANOSUCHKEY0000000", secret="not-a-real-secret-123")
    cloud = AwsCloud(LocalStore(tmp_path))
    with pytest.raises(BadCredentials) as err:
        cloud.plan(parse(spec_data(ami)))
    line = one_line(str(err.value))
    assert "AWS rejected the credentials" in line
    assert "AKIANOSUCHKEY" not in line and "not-a-real-secret" not in line
    result = CliRunner().invoke(doctor, ["--cloud", "aws", "--region", REGION])
    assert result.exit_code == 1
    assert one_line(result.output).startswith("FAIL credentials: AWS rejected the credentials")


def test_missing_permission_names_the_action(auth_server, monkeypatch, tmp_path):
    url, keys = auth_server
    ami = ami_of(url, keys)
    aws_environment(monkeypatch, url, *keys["reader"])
    cloud = AwsCloud(LocalStore(tmp_path))
    c = parse(spec_data(ami))
    assert cloud.plan(c)  # reading is allowed
    with pytest.raises(MissingPermission) as err:
        cloud.apply(c)
    assert one_line(str(err.value)).startswith("missing permission ec2:CreateVpc: AWS denied it")
    assert keys["reader"][0] not in str(err.value)


def test_doctor_lists_what_create_and_delete_need(auth_server, monkeypatch, tmp_path):
    url, keys = auth_server
    ami = ami_of(url, keys)
    spec_file = tmp_path / "c.yaml"
    spec_file.write_text(yaml.safe_dump(spec_data(ami)))
    aws_environment(monkeypatch, url, *keys["reader"])
    result = CliRunner().invoke(doctor, ["--cloud", "aws", "-f", str(spec_file)])
    assert result.exit_code == 1, result.output
    lines = dict(line.split(": ", 1) for line in result.output.splitlines())
    assert lines["ok   credentials"].endswith("user/reader")
    missing = lines["FAIL permissions"]
    for action in ("ec2:CreateVpc", "ec2:RunInstances", "iam:PassRole", "ec2:DeleteVpc",
                   "ec2:TerminateInstances", "iam:DeleteRole"):
        assert action in missing
    assert "ec2:DescribeVpcs" not in missing
    assert lines["ok   zones"] and lines["ok   instance types"] and lines["ok   image"] == ami

    aws_environment(monkeypatch, url, *keys["admin"])
    result = CliRunner().invoke(doctor, ["--cloud", "aws", "-f", str(spec_file)])
    assert result.exit_code == 0, result.output
    assert "ok   permissions: all" in result.output


def test_unknown_zone_and_instance_type_give_one_line(aws, ami, tmp_path):
    cloud = AwsCloud(LocalStore(tmp_path))
    with pytest.raises(AwsError) as err:
        cloud.plan(parse(spec_data(ami, zones=["us-east-1z"])))
    assert one_line(str(err.value)).startswith("unknown zone us-east-1z in region us-east-1 (zones: us-east-1a")
    with pytest.raises(AwsError) as err:
        cloud.plan(parse(spec_data(ami, nodeInstanceType="t3.bogus")))
    assert one_line(str(err.value)) == "unknown instance type t3.bogus in region us-east-1"
    with pytest.raises(AwsError) as err:
        cloud.plan(parse(spec_data("ami-0123456789abcdef0")))
    assert one_line(str(err.value)) == "machine image ami-0123456789abcdef0 not found in region us-east-1"
    with pytest.raises(AwsError) as err:
        cloud.plan(parse(spec_data(None)))  # no image named: the newest Debian 12 one
    assert one_line(str(err.value)) == "no Debian 12 image found in us-east-1: set spec.aws.ami"

    spec_file = tmp_path / "c.yaml"
    spec_file.write_text(yaml.safe_dump(spec_data(ami, zones=["us-east-1z"], controlPlaneInstanceType="m9.huge")))
    result = CliRunner().invoke(doctor, ["--cloud", "aws", "-f", str(spec_file)])
    assert result.exit_code == 1
    # (this server has no IAM users: the permission check cannot run and says so)
    fails = [x for x in result.output.splitlines() if x.startswith("FAIL") and "permissions" not in x]
    assert fails == [
        "FAIL zones: unknown zone us-east-1z in region us-east-1 (zones: us-east-1a, us-east-1b, "
        "us-east-1c, us-east-1d, us-east-1e, us-east-1f)",
        "FAIL instance types: unknown instance type m9.huge in region us-east-1",
    ]
