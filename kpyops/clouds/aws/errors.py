"""AWS errors as one line a person can act on, with credentials never in the text."""

from __future__ import annotations

import re

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from kpyops.clouds.base import CloudError

# The IAM prefix of each boto3 service, for naming the action a permission error is about.
IAM_PREFIX = {
    "elbv2": "elasticloadbalancing",
    "ec2": "ec2",
    "iam": "iam",
    "route53": "route53",
    "s3": "s3",
    "sts": "sts",
}
DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedAccess",
    "Forbidden",
}
BAD_CREDENTIALS = {
    "AuthFailure",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidToken",
}
THROTTLED = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SlowDown",
    "EC2ThrottledException",
    "PriorRequestNotComplete",
}
DEPENDENCY = {"DependencyViolation", "ResourceInUse", "DeleteConflict", "InvalidIPAddress.InUse"}
# An access key id looks like this; it is never secret on its own, but we keep it out too.
ACCESS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{12,}\b")


class AwsError(CloudError):
    """An AWS call failed; ``str()`` is one line, free of credentials."""

    def __init__(self, message: str, *, code: str = "", action: str = ""):
        super().__init__(redact(message.replace("\n", " ")))
        self.code = code
        self.action = action


class MissingPermission(AwsError):
    pass


class BadCredentials(AwsError):
    pass


class DependencyError(AwsError):
    """A resource cannot go yet: something still uses it."""


_secrets: set[str] = set()


def register_secret(*values: str | None) -> None:
    """Remember values (the resolved credentials) that must never appear in any message."""
    for v in values:
        if v and len(v) >= 8:
            _secrets.add(v)


def redact(text: str) -> str:
    for s in _secrets:
        text = text.replace(s, "***")
    return ACCESS_KEY_ID.sub("***", text)


def action_name(service: str, operation: str) -> str:
    return f"{IAM_PREFIX.get(service, service)}:{operation}"


def translate(err: Exception, service: str, operation: str) -> AwsError:
    """Turn a botocore error into an AwsError whose text names what to do."""
    action = action_name(service, operation)
    if isinstance(err, ClientError):
        code = err.response.get("Error", {}).get("Code", "") or str(
            err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
        )
        message = err.response.get("Error", {}).get("Message", "") or ""
        if code in DENIED or (code == "403" and service == "s3"):
            return MissingPermission(
                f"missing permission {action}: AWS denied it ({code}); grant it to the identity "
                "you run as (`kpyops doctor --cloud aws` lists every action needed)",
                code=code,
                action=action,
            )
        if code in BAD_CREDENTIALS:
            return BadCredentials(
                f"AWS rejected the credentials ({code}) on {action}: check the profile or "
                "environment that boto3's credential chain uses",
                code=code,
                action=action,
            )
        if code in DEPENDENCY:
            return DependencyError(f"{action}: {code}: {message}", code=code, action=action)
        return AwsError(f"{action} failed: {code}: {message}", code=code, action=action)
    if isinstance(err, NoCredentialsError | PartialCredentialsError):
        return BadCredentials(
            "no AWS credentials found: boto3's chain looks at AWS_PROFILE, AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY, ~/.aws, SSO and the instance role",
            action=action,
        )
    if isinstance(err, NoRegionError):
        return AwsError("no AWS region: set spec.aws.region", action=action)
    if isinstance(err, EndpointConnectionError):
        return AwsError(f"cannot reach the AWS endpoint for {action}: {err}", action=action)
    if isinstance(err, BotoCoreError):
        return AwsError(f"{action} failed: {err}", action=action)
    return AwsError(f"{action} failed: {type(err).__name__}: {err}", action=action)
