"""The S3 state store against moto: a private, versioned, encrypted bucket; the same
behaviour as the local store; a lock object that keeps two runs apart."""

from __future__ import annotations

import boto3
import pytest

from kpyops.state import ClusterNotFound, LockHeld, StateError, open_store
from kpyops.state.s3 import S3Store

pytestmark = pytest.mark.integration


@pytest.fixture
def bucket(aws, name) -> str:
    return f"kpyops-state-{name}"


def test_first_write_makes_a_private_versioned_encrypted_bucket(bucket):
    store = open_store(f"s3://{bucket}/team-a")
    assert isinstance(store, S3Store)
    s3 = boto3.client("s3")
    assert store.clusters() == []  # reading makes nothing
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    store.write_text("c1", "spec.yaml", "kind: Cluster\n")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(pab.values()) and len(pab) == 4
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    head = s3.head_object(Bucket=bucket, Key="team-a/clusters/c1/spec.yaml")
    assert head["ServerSideEncryption"] == "AES256"


def test_store_behaves_like_the_local_one(bucket):
    store = S3Store(f"s3://{bucket}/p")
    with pytest.raises(ClusterNotFound):
        store.read("c1", "spec.yaml")
    store.write_text("c1", "spec.yaml", "a")
    store.write("c1", "ssh/id_ed25519", b"private", secret=True)
    store.write_text("c1", "inventory/hosts.yml", "h")
    store.write_text("c2", "inventory/hosts.yml", "no spec: not a cluster")
    assert store.clusters() == ["c1"]
    assert store.read_text("c1", "spec.yaml") == "a"
    assert store.exists("c1", "inventory")  # a folder
    assert not store.exists("c1", "nothing")
    assert store.list("c1") == ["inventory/hosts.yml", "spec.yaml", "ssh/id_ed25519"]
    assert store.list("c1", "inventory/") == ["inventory/hosts.yml"]
    with pytest.raises(StateError, match="not found"):
        store.read("c1", "missing")
    with pytest.raises(StateError, match="escapes"):
        store.write_text("c1", "../c2/spec.yaml", "x")
    store.write_text("c1", "spec.yaml", "b")
    versions = boto3.client("s3").list_object_versions(Bucket=bucket, Prefix="p/clusters/c1/spec.yaml")
    assert len(versions["Versions"]) == 2  # the earlier spec is kept
    store.delete("c1", "inventory")
    assert store.list("c1") == ["spec.yaml", "ssh/id_ed25519"]
    store.delete_cluster("c1")
    assert store.list("c1") == [] and store.clusters() == []


def test_the_lock_keeps_two_runs_apart(bucket):
    one, two = S3Store(f"s3://{bucket}"), S3Store(f"s3://{bucket}")
    with one.lock("c1", purpose="update cluster"):
        with pytest.raises(LockHeld, match="update cluster"), two.lock("c1", purpose="delete cluster"):
            pass
        with two.lock("c2", purpose="other cluster"):
            pass  # clusters lock separately
        assert one.list("c1") == []  # the lock is not a cluster file
    with two.lock("c1", purpose="delete cluster"):  # released, even in a versioned bucket
        pass
    with pytest.raises(RuntimeError), one.lock("c1", purpose="crashing run"):
        raise RuntimeError("boom")
    with two.lock("c1", purpose="after a crash"):
        pass


def test_a_lock_left_by_a_run_that_is_gone_is_broken_only_by_naming_its_holder(bucket):
    import json
    import socket

    from kpyops.state.s3 import holder_id

    store = S3Store(f"s3://{bucket}")
    store.write_text("c1", "spec.yaml", "a")
    key = "clusters/c1/.lock"
    left = {"pid": 999999, "host": "gone-host", "purpose": "update cluster", "since": "2026-12-01T00:00:00Z"}
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=json.dumps(left).encode())
    with pytest.raises(LockHeld, match="kpyops state unlock c1 --holder gone-host/999999"), \
            store.lock("c1", purpose="update cluster"):
        pass
    with pytest.raises(StateError, match="not by someone/1: nothing removed"):
        store.break_lock("c1", "someone/1")
    with pytest.raises(LockHeld), store.lock("c1", purpose="update cluster"):  # still held
        pass
    assert "gone-host" in store.break_lock("c1", "gone-host/999999")
    with store.lock("c1", purpose="update cluster"):
        assert holder_id(store._holder(key)) == f"{socket.gethostname()}/{__import__('os').getpid()}"
    with pytest.raises(StateError, match="not locked"):
        store.break_lock("c1", "gone-host/999999")
    assert store.read_text("c1", "spec.yaml") == "a"  # the cluster's files untouched
    # the command a person runs, named in the LockHeld message
    from click.testing import CliRunner

    from kpyops.cli import commands
    from kpyops.cli.main import cli

    for c in commands.all_commands():
        cli.add_command(c)
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=json.dumps(left).encode())
    wrong = CliRunner().invoke(cli, ["--state", f"s3://{bucket}", "state", "unlock", "c1",
                                     "--holder", "someone/1"])
    assert wrong.exit_code != 0 and "nothing removed" in wrong.output
    right = CliRunner().invoke(cli, ["--state", f"s3://{bucket}", "state", "unlock", "c1",
                                     "--holder", "gone-host/999999"])
    assert right.exit_code == 0, right.output
    assert "removed" in right.output and "gone-host" in right.output


def test_doctor_checks_the_state_bucket(bucket):
    from click.testing import CliRunner

    from kpyops.cli.doctor import command as doctor

    plain = f"{bucket}-plain"
    boto3.client("s3").create_bucket(Bucket=plain)
    S3Store(f"s3://{bucket}").write_text("c1", "spec.yaml", "a")

    def bucket_line(name: str) -> str:
        result = CliRunner().invoke(doctor, ["--cloud", "aws", "--region", "us-east-1",
                                             "--state-bucket", name])
        assert result.exit_code == 1  # (this server has no IAM users: permissions fail)
        return next(x for x in result.output.splitlines() if "state bucket" in x)

    assert bucket_line(bucket) == f"ok   state bucket: s3://{bucket}: versioned, private, encrypted"
    line = bucket_line(plain)
    assert line.startswith(f"FAIL state bucket: s3://{plain}: versioning is off, ")
    assert "public access is not fully blocked" in line or "no public access block" in line
    # before the first create the bucket does not exist: a note, not a failure
    assert bucket_line(f"{bucket}-new") == (f"ok   state bucket: s3://{bucket}-new does not exist "
                                            "yet: the first create makes it (versioned, private, encrypted)")


def test_work_folder_round_trip_keeps_pki_and_secrets_in_the_bucket(bucket, tmp_path, monkeypatch):
    """What Ansible writes on the control machine (PKI, secrets, snapshots) reaches S3, and a
    new control machine (an empty cache) gets it back before its first run."""
    from pathlib import Path

    from kpyops.state.workdir import pull, push, workdir

    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path / "laptop-1"))
    store = S3Store(f"s3://{bucket}/p")
    store.write_text("c1", "spec.yaml", "kind: Cluster\n")
    store.write_text("c1", "inventory/hosts.yml", "all: {}\n")
    wd = workdir(store, "c1")
    assert pull(store, "c1") == ["inventory/hosts.yml"]
    (wd / "pki").mkdir()
    (wd / "pki/ca.key").write_bytes(b"CA KEY")
    (wd / "secrets").mkdir()
    (wd / "secrets/encryption-at-rest-secretbox.key").write_bytes(b"AT REST")
    assert push(store, "c1") == ["pki/ca.key", "secrets/encryption-at-rest-secretbox.key"]
    head = boto3.client("s3").head_object(Bucket=bucket, Key="p/clusters/c1/pki/ca.key")
    assert head["ServerSideEncryption"] == "AES256"

    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path / "laptop-2"))
    fresh = workdir(store, "c1")
    assert fresh != wd and not fresh.exists()
    pull(store, "c1")
    assert (fresh / "pki/ca.key").read_bytes() == b"CA KEY"
    assert (fresh / "secrets/encryption-at-rest-secretbox.key").read_bytes() == b"AT REST"
    assert push(store, "c1") == []
