"""Credentials come only from boto3's chain and never land anywhere: run a whole cluster
life with a recognisable fake secret, then search every file written and all output."""

from __future__ import annotations

import logging
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner
from conftest import FAKE_KEY_ID, FAKE_SECRET, REGION

from kpyops import lifecycle
from kpyops.cli.doctor import command as doctor
from kpyops.clouds.aws import AwsCloud, AwsError
from kpyops.spec import complete
from kpyops.spec.io import dumps, parse
from kpyops.state import open_store

pytestmark = pytest.mark.integration


def test_the_fake_secret_appears_nowhere(aws, ami, name, tmp_path, monkeypatch, caplog, capsys):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # where work folders of remote stores go
    caplog.set_level(logging.DEBUG)
    out: list[str] = []
    bucket = f"kpyops-canary-{name}"
    store = open_store(f"s3://{bucket}/state")
    user = parse({"metadata": {"name": name}, "spec": {
        "cloud": "aws", "nodeGroups": [{"name": "node", "count": 1}],
        "aws": {"region": REGION, "ami": ami, "stateBucket": bucket}}})

    completed = lifecycle.create(store, user, out.append)
    cloud = AwsCloud(store, out.append, delete_timeout=60)
    out += map(str, cloud.plan(completed))
    with store.lock(name, purpose="update cluster"):
        out += map(str, cloud.apply(completed))
        lifecycle.write_inventory(store, name, lifecycle.inventory_files(store, completed, cloud))
    out += map(str, cloud.plan(completed))
    try:
        cloud.plan(complete(parse({**user.model_dump(by_alias=True, mode="json"), "spec": {
            **user.model_dump(by_alias=True, mode="json")["spec"],
            "aws": {"region": REGION, "ami": ami, "zones": ["us-east-1q"]}}})))
    except AwsError as err:
        out.append(str(err))
    result = CliRunner().invoke(doctor, ["--cloud", "aws", "--region", REGION, "--state-bucket", bucket])
    out.append(result.output)
    out += map(str, cloud.plan_delete(completed))
    out += map(str, cloud.delete(completed))

    assert any("creating instance cp-1" in line for line in out)  # the run did happen
    inventory = store.list(name, "inventory/")
    assert inventory and store.exists(name, "ssh/id_ed25519")

    written: dict[str, bytes] = {}
    s3 = boto3.client("s3")
    for v in s3.list_object_versions(Bucket=bucket).get("Versions", []):
        body = s3.get_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
        written[f"s3://{bucket}/{v['Key']}@{v['VersionId']}"] = body
    for p in Path(tmp_path).rglob("*"):
        if p.is_file():
            written[str(p)] = p.read_bytes()
    assert len(written) > 5
    captured = capsys.readouterr()
    text = "\n".join([*out, captured.out, captured.err, dumps(completed)])
    # Every log record at every level, botocore's own debug output included, is free of
    # the secret. The key id (not a secret) shows only in botocore's DEBUG request dumps,
    # which kpyops never turns on.
    assert FAKE_SECRET not in caplog.text
    ours = "\n".join(r.getMessage() for r in caplog.records
                     if not (r.levelno <= logging.DEBUG and r.name.startswith(("botocore", "urllib3"))))
    for secret in (FAKE_SECRET, FAKE_KEY_ID):
        assert secret not in text
        assert secret not in ours
        leaks = [where for where, body in written.items() if secret.encode() in body]
        assert leaks == []
