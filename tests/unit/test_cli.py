"""The CLI on a real temporary state store; the cloud is a recording fake (unit level)."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest
import yaml
from click.testing import CliRunner

from kpyops import lifecycle
from kpyops.cli import commands
from kpyops.cli.main import cli
from kpyops.clouds.base import Change, Cloud
from kpyops.state import LocalStore

for _c in commands.all_commands():
    cli.add_command(_c)


class RecordingCloud(Cloud):
    name = "fake"
    calls: ClassVar[list[str]] = []

    def plan(self, cluster):
        return [Change("create", "container", h.name) for h in cluster.spec.control_plane.hosts]

    def apply(self, cluster):
        RecordingCloud.calls.append(f"apply {cluster.name}")
        return []

    def delete(self, cluster):
        RecordingCloud.calls.append(f"delete {cluster.name}")
        return []


@pytest.fixture
def env(tmp_path, monkeypatch):
    RecordingCloud.calls = []
    monkeypatch.setattr(lifecycle, "get_cloud", lambda name, store, progress=None: RecordingCloud(store))
    monkeypatch.setattr("kpyops.clouds.get_cloud", lambda name, store, progress=None: RecordingCloud(store))
    runner = CliRunner()

    def run(*args):
        return runner.invoke(cli, ["--state", str(tmp_path), *args], catch_exceptions=False)

    return run, tmp_path


def test_dry_run_prints_completed_spec_and_writes_nothing(env):
    run, root = env
    r = run("create", "cluster", "dry", "--dry-run", "-o", "yaml", "--nodes", "3")
    assert r.exit_code == 0, r.output
    data = yaml.safe_load(r.stdout)
    assert data["spec"]["nodeGroups"][0]["count"] == 3
    assert data["spec"]["dns"]["clusterDNS"] == "10.96.0.10"
    assert not (root / "clusters").exists()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--control-planes", "2"], "spec.controlPlane.count"),
        (["--proxy-mode", "ipvs", "-f", "-"], "spec.etcd.members"),
    ],
)
def test_bad_input_exits_2_and_touches_nothing(env, args, field, monkeypatch):
    _run, root = env
    stdin = yaml.safe_dump({"metadata": {"name": "x"}, "spec": {"etcd": {"members": 2}}})
    r = CliRunner().invoke(cli, ["--state", str(root), "create", "cluster", "bad", "--yes", *args],
                           input=stdin)
    assert r.exit_code == 2
    assert field in r.stderr
    assert RecordingCloud.calls == []
    assert not (root / "clusters").exists()


def test_create_get_update_delete(env):
    run, root = env
    assert run("create", "cluster", "c1", "--control-planes", "3").exit_code == 0
    store = LocalStore(root)
    assert store.list("c1") == sorted(store.list("c1"))
    assert {"spec.yaml", "cluster-completed.yaml", "inventory/hosts.yml"} <= set(store.list("c1"))
    # the user's spec stays small; the completed one has every default
    user = yaml.safe_load(store.read_text("c1", "spec.yaml"))
    assert user == {"apiVersion": "kpyops.io/v1alpha1", "kind": "Cluster",
                    "metadata": {"name": "c1"}, "spec": {"controlPlane": {"count": 3}}}
    r = run("get", "clusters")
    assert "c1" in r.stdout and "local" in r.stdout
    full = json.loads(run("get", "cluster", "c1", "-o", "json", "--full").stdout)
    assert full["spec"]["etcd"]["members"] == 3
    short = json.loads(run("get", "cluster", "c1", "-o", "json").stdout)
    assert "dns" not in short["spec"]
    # a second create of the same name is refused, nothing changed
    r = run("create", "cluster", "c1")
    assert r.exit_code == 1 and "already exists" in r.stderr
    # update without --yes shows the plan and applies nothing
    r = run("update", "cluster", "c1")
    assert r.exit_code == 0 and "+ container c1-cp-1" in r.stdout
    assert RecordingCloud.calls == []
    # delete without --yes lists, with --yes deletes machines and state
    r = run("delete", "cluster", "c1")
    assert "state" in r.stdout and store.clusters() == ["c1"]
    r = run("delete", "cluster", "c1", "--yes")
    assert r.exit_code == 0 and RecordingCloud.calls == ["delete c1"]
    assert store.clusters() == [] and not (root / "clusters" / "c1").exists()


def test_locked_cluster_is_refused(env):
    run, root = env
    assert run("create", "cluster", "c2").exit_code == 0
    with LocalStore(root).lock("c2", purpose="another run"):
        r = run("delete", "cluster", "c2", "--yes")
    assert r.exit_code == 1 and "locked" in r.stderr
    assert LocalStore(root).clusters() == ["c2"]


def test_unknown_cluster(env):
    run, _ = env
    r = run("get", "cluster", "nope")
    assert r.exit_code == 1 and "not found" in r.stderr


def test_spec_schema_is_json_schema(env):
    run, _ = env
    schema = json.loads(run("spec", "schema").stdout)
    assert schema["title"] == "Cluster"
    assert "podCIDR" in json.dumps(schema)
