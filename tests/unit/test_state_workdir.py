"""The work folder of a store without a local folder (S3): what Ansible reads is pulled
from the store before a run, what the playbooks wrote is pushed back after it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from kpyops.state import LocalStore
from kpyops.state.base import SSH_KEY
from kpyops.state.workdir import pull, push, synced, workdir


class FolderlessStore(LocalStore):
    """A store with no local folder for Ansible, as S3 is; counts its writes."""

    def __init__(self, root):
        super().__init__(root)
        self.writes: list[tuple[str, bool]] = []

    def local_path(self, cluster):
        return None

    def write(self, cluster, key, data, *, secret=False):
        self.writes.append((key, secret))
        super().write(cluster, key, data, secret=secret)


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path / "home"))
    s = FolderlessStore(tmp_path / "store")
    s.write("c", SSH_KEY, b"PRIVATE", secret=True)
    s.write_text("c", "inventory/hosts.yml", "all: {}\n")
    s.write("c", "pki/ca.key", b"CA KEY", secret=True)
    s.write_text("c", "spec.yaml", "kind: Cluster\n")
    s.writes.clear()
    return s


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_pull_copies_what_ansible_reads_privately_and_nothing_else(store, tmp_path):
    wd = workdir(store, "c")
    assert str(wd).startswith(str(tmp_path / "home"))
    assert sorted(pull(store, "c")) == ["inventory/hosts.yml", "pki/ca.key", SSH_KEY]
    assert (wd / SSH_KEY).read_bytes() == b"PRIVATE"
    assert (wd / "pki/ca.key").read_bytes() == b"CA KEY"
    assert not (wd / "spec.yaml").exists()
    assert {mode(wd / k) for k in (SSH_KEY, "pki/ca.key", "inventory/hosts.yml")} == {0o600}
    assert mode(wd / "pki") == 0o700 and mode(wd) == 0o700
    assert pull(store, "c") == []  # nothing changed: nothing rewritten


def test_pull_mirrors_the_inventory_and_removes_stale_files(store):
    wd = workdir(store, "c")
    pull(store, "c")
    (wd / "inventory/group_vars/all").mkdir(parents=True)
    (wd / "inventory/group_vars/all/old.yml").write_text("stale: true\n")
    store.write_text("c", "inventory/hosts.yml", "all: {hosts: {a: {}}}\n")
    assert pull(store, "c") == ["inventory/hosts.yml"]
    assert not (wd / "inventory/group_vars/all/old.yml").exists()
    assert (wd / "inventory/hosts.yml").read_text() == "all: {hosts: {a: {}}}\n"


def test_push_writes_only_new_or_changed_control_files_as_secrets(store):
    wd = workdir(store, "c")
    pull(store, "c")
    (wd / "secrets").mkdir(mode=0o700)
    (wd / "secrets/encryption-at-rest-secretbox.key").write_bytes(b"K")
    (wd / "pki/etcd").mkdir()
    (wd / "pki/etcd/ca.crt").write_bytes(b"CERT")
    (wd / "backups/etcd").mkdir(parents=True)
    (wd / "backups/etcd/snap.db").write_bytes(b"SNAP")
    (wd / "inventory/hosts.yml").write_text("edited locally")  # the store's copy wins
    pushed = push(store, "c")
    assert sorted(pushed) == ["backups/etcd/snap.db", "pki/etcd/ca.crt",
                              "secrets/encryption-at-rest-secretbox.key"]
    assert all(secret for _key, secret in store.writes)
    assert store.read("c", "secrets/encryption-at-rest-secretbox.key") == b"K"
    assert store.read_text("c", "inventory/hosts.yml") == "all: {}\n"
    assert push(store, "c") == []
    (wd / "pki/ca.key").write_bytes(b"RENEWED")
    assert push(store, "c") == ["pki/ca.key"]
    assert store.read("c", "pki/ca.key") == b"RENEWED"


def test_synced_pushes_what_a_failed_run_wrote(store):
    with pytest.raises(RuntimeError), synced(store, "c") as wd:
        (wd / "pki/new.crt").write_bytes(b"NEW")
        raise RuntimeError("the playbook failed")
    assert store.read("c", "pki/new.crt") == b"NEW"


def test_a_local_store_is_its_own_work_folder(tmp_path):
    local = LocalStore(tmp_path / "store")
    local.write_text("c", "inventory/hosts.yml", "all: {}\n")
    assert workdir(local, "c") == tmp_path / "store" / "clusters" / "c"
    assert pull(local, "c") == [] and push(local, "c") == []
