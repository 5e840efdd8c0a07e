"""The one door to AWS: retries on throttling, one-line errors, read-only plans, redaction."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from kpyops.clouds.aws.doctor import decide, principal_arn
from kpyops.clouds.aws.errors import BadCredentials, MissingPermission, redact
from kpyops.clouds.aws.session import AwsSession, ReadOnlyViolation

SECRET = "unit-FAKE-secret-0f9e8d7c6b5a"


def session(**kw) -> tuple[AwsSession, list[float]]:
    sleeps: list[float] = []
    boto = boto3.session.Session(aws_access_key_id="AKIAUNITTESTFAKE0001",
                                 aws_secret_access_key=SECRET, region_name="eu-west-1")
    return AwsSession("eu-west-1", session=boto, sleep=sleeps.append, **kw), sleeps


def test_throttling_is_retried_with_growing_backoff_then_succeeds():
    s, sleeps = session()
    stub = Stubber(s.client("ec2"))
    for _ in range(3):
        stub.add_client_error("describe_vpcs", "RequestLimitExceeded", "Request limit exceeded.")
    stub.add_response("describe_vpcs", {"Vpcs": []})
    with stub:
        assert s.call("ec2", "describe_vpcs") == {"Vpcs": []}
    assert len(sleeps) == 3
    assert all(0 <= x <= 20 for x in sleeps)


def test_throttling_gives_up_after_max_attempts():
    s, sleeps = session(max_attempts=3)
    stub = Stubber(s.client("ec2"))
    for _ in range(3):
        stub.add_client_error("describe_vpcs", "Throttling", "Rate exceeded")
    with stub, pytest.raises(Exception, match="Throttling"):
        s.call("ec2", "describe_vpcs")
    assert len(sleeps) == 2


def test_access_denied_names_the_iam_action_in_one_line():
    s, _ = session()
    stub = Stubber(s.client("elbv2"))
    stub.add_client_error("create_load_balancer", "AccessDenied",
                          "User: arn:aws:iam::1:user/x is not authorized\nto perform this")
    with stub, pytest.raises(MissingPermission) as err:
        s.call("elbv2", "create_load_balancer", Name="x")
    text = str(err.value)
    assert "missing permission elasticloadbalancing:CreateLoadBalancer" in text
    assert "\n" not in text


def test_bad_credentials_say_so_without_the_key():
    s, _ = session()
    stub = Stubber(s.client("sts"))
    stub.add_client_error("get_caller_identity", "InvalidClientTokenId",
                          "The security token AKIAUNITTESTFAKE0001 included in the request is invalid")
    with stub, pytest.raises(BadCredentials) as err:
        s.call("sts", "get_caller_identity")
    assert "rejected the credentials" in str(err.value)
    assert "AKIAUNITTESTFAKE0001" not in str(err.value)


def test_read_only_session_refuses_any_change_before_sending_it():
    s, _ = session(read_only=True)
    stub = Stubber(s.client("ec2"))  # no responses queued: a sent request would fail differently
    with stub, pytest.raises(ReadOnlyViolation):
        s.call("ec2", "create_vpc", CidrBlock="10.0.0.0/16")
    stub.add_response("describe_vpcs", {"Vpcs": []})
    with stub:
        s.call("ec2", "describe_vpcs")


def test_resolved_credentials_are_redacted_from_any_text():
    session()
    assert SECRET not in redact(f"oops {SECRET} leaked")
    assert "AKIA" not in redact("key AKIAABCDEFGHIJKLMNOP here")


def test_local_policy_evaluation():
    docs = [
        {"Statement": [{"Effect": "Allow", "Action": ["ec2:Describe*", "iam:*"], "Resource": "*"},
                       {"Effect": "Deny", "Action": "iam:DeleteRole", "Resource": "*"}]},
        {"Statement": {"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}},
    ]
    assert decide(docs, "ec2:DescribeVpcs")
    assert decide(docs, "iam:CreateRole")
    assert not decide(docs, "iam:DeleteRole")  # explicit deny wins
    assert decide(docs, "elasticloadbalancing:CreateListener")  # via NotAction
    assert not decide(docs[:1], "ec2:CreateVpc")
    assert not decide(docs, "s3:PutObject")


def test_assumed_role_arn_becomes_its_role():
    assert principal_arn("arn:aws:sts::123456789012:assumed-role/ops/me") == \
        "arn:aws:iam::123456789012:role/ops"
    assert principal_arn("arn:aws:iam::123456789012:user/bob") == "arn:aws:iam::123456789012:user/bob"
