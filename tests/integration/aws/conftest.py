"""A moto server on 127.0.0.1 (a real HTTP endpoint) and an environment pointing boto3
at it with recognisable fake credentials, which no output or file may ever contain."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import boto3
import pytest

FAKE_KEY_ID = "AKIAKPYOPSFAKE7Q3Z9X"
FAKE_SECRET = "kpyops-FAKE-SECRET-7c1e5f0a9b2d4e6f8a0b1c2d3e4f5a6b"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    # Without moto's few hundred stock images its EC2 backend starts in 2 s instead of 10,
    # and its state dump stays small; tests register the image they use.
    env = {**os.environ, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false", **(env or {})}
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).read()
            return proc, url
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.2)


@pytest.fixture(scope="session")
def moto_url():
    proc, url = start_moto()
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def aws_environment(monkeypatch, url: str, key_id: str = FAKE_KEY_ID, secret: str = FAKE_SECRET):
    for var in list(os.environ):
        if var.startswith("AWS_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/kpyops-test")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/kpyops-test")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def aws(moto_url, monkeypatch):
    """The environment pointing at the shared moto server. The server is not reset between
    tests (building moto's EC2 backend takes seconds): each test uses its own cluster name."""
    aws_environment(monkeypatch, moto_url)
    return moto_url


@pytest.fixture
def name(request) -> str:
    """A cluster name of this test's own."""
    return f"t{zlib.crc32(request.node.nodeid.encode()) % 10**8}"


_ami: list[str] = []


@pytest.fixture
def ami(aws) -> str:
    if not _ami:
        _ami.append(register_image(boto3.client("ec2", region_name=REGION)))
    return _ami[0]


def register_image(ec2) -> str:
    return ec2.register_image(
        Name="kpyops-test-image", RootDeviceName="/dev/xvda", Architecture="x86_64"
    )["ImageId"]


# moto's dump lists every model object it ever built, including the answers it builds for
# DescribeTargetHealth: they are replies, not resources, so they are left out.
RESPONSE_OBJECTS = {"elbv2": ["FakeHealthStatus"]}


def moto_state(url: str) -> bytes:
    """Every resource the endpoint holds, as moto dumps it (bytes, compared exactly)."""
    data = json.loads(urllib.request.urlopen(f"{url}/moto-api/data.json").read())
    for service, names in RESPONSE_OBJECTS.items():
        for name in names:
            data.get(service, {}).pop(name, None)
    return json.dumps(data, sort_keys=True).encode()


def warm_up() -> None:
    """Touch every service once: moto creates a backend on its first request, which would
    show in its dump as a change no client made."""
    for service, op in [("iam", "list_roles"), ("elbv2", "describe_load_balancers"),
                        ("elb", "describe_load_balancers"), ("route53", "list_hosted_zones"),
                        ("ec2", "describe_vpcs"), ("s3", "list_buckets"),
                        ("sts", "get_caller_identity")]:
        getattr(boto3.client(service, region_name=REGION), op)()


def diff_paths(a, b, path: str = "") -> list[str]:
    """Where two JSON-like values differ, as paths (for readable failures)."""
    if a == b:
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in diff_paths(a.get(k), b.get(k), f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in diff_paths(x, y, f"{path}[{i}]")]
    return [f"{path}: {str(a)[:200]} -> {str(b)[:200]}"]
