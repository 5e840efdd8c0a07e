"""One door to AWS: clients from boto3's standard credential chain, retries with backoff on
throttling, errors translated to one line, and a read-only mode that plans use.

Credentials are never read from or written to the spec or the state store; boto3 finds them
(environment, profile, SSO, instance role). Set AWS_ENDPOINT_URL to talk to a test endpoint.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from kpyops.clouds.aws.errors import (
    THROTTLED,
    AwsError,
    action_name,
    register_secret,
    translate,
)

READ_PREFIXES = ("describe_", "list_", "get_", "simulate_", "head_")


class ReadOnlyViolation(AwsError):
    """A plan tried to change something: a bug, never allowed."""


def backoff(attempt: int, base: float = 0.5, cap: float = 20.0) -> float:
    """Full-jitter exponential backoff (AWS architecture blog), seconds before retry N."""
    return random.uniform(0, min(cap, base * 2**attempt))


class AwsSession:
    def __init__(
        self,
        region: str,
        *,
        read_only: bool = False,
        max_attempts: int = 8,
        sleep: Callable[[float], None] = time.sleep,
        session: boto3.session.Session | None = None,
    ):
        self.region = region
        self.read_only = read_only
        self.max_attempts = max_attempts
        self.sleep = sleep
        self._session = session or boto3.session.Session(region_name=region)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.called: set[str] = set()  # IAM actions used, e.g. "ec2:CreateVpc"
        creds = self._session.get_credentials()
        if creds is not None:
            frozen = creds.get_frozen_credentials()
            register_secret(frozen.secret_key, frozen.token, frozen.access_key)

    def client(self, service: str):
        with self._lock:
            if service not in self._clients:
                # Our own loop retries throttling, so botocore's is off: one place, testable.
                config = Config(retries={"max_attempts": 1, "mode": "standard"},
                                connect_timeout=10, read_timeout=60)
                self._clients[service] = self._session.client(service, config=config)
            return self._clients[service]

    def call(self, service: str, operation: str, **kwargs) -> dict:
        """Call ``client.operation(**kwargs)``, retrying throttling with backoff."""
        if self.read_only and not operation.startswith(READ_PREFIXES):
            raise ReadOnlyViolation(f"{service}:{operation} attempted during a read-only plan")
        method = getattr(self.client(service), operation)
        self.called.add(action_name(service, _api_name(method, operation)))
        for attempt in range(self.max_attempts):
            try:
                return method(**kwargs)
            except ClientError as err:
                code = err.response.get("Error", {}).get("Code", "")
                status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
                if (code in THROTTLED or status in (429, 503)) and attempt + 1 < self.max_attempts:
                    self.sleep(backoff(attempt))
                    continue
                raise translate(err, service, _api_name(method, operation)) from None
            except (BotoCoreError, ResponseParserError) as err:
                raise translate(err, service, _api_name(method, operation)) from None
        raise AssertionError("unreachable")

    def pages(self, service: str, operation: str, key: str, **kwargs) -> Iterator[dict]:
        """Every item under ``key`` across pages (NextToken / Marker / NextMarker styles)."""
        token_in, token_out = _token_names(service, operation)
        while True:
            page = self.call(service, operation, **kwargs)
            yield from page.get(key, [])
            token = page.get(token_out)
            if not token or (service == "iam" and not page.get("IsTruncated")):
                return
            kwargs[token_in] = token


def _api_name(method, operation: str) -> str:
    mapping = getattr(getattr(method, "__self__", None), "meta", None)
    if mapping is not None:
        return mapping.method_to_api_mapping.get(operation, operation)
    return operation


def _token_names(service: str, operation: str) -> tuple[str, str]:
    if service == "iam":
        return "Marker", "Marker"
    if service == "elbv2":
        return "Marker", "NextMarker"
    return "NextToken", "NextToken"
