"""Lifecycle pieces that do not need machines."""

from __future__ import annotations

import stat
from pathlib import Path

from kpyops import lifecycle
from kpyops.state import LocalStore
from kpyops.state.base import SSH_KEY


class FolderlessStore(LocalStore):
    """A store with no local folder for Ansible, as S3 is."""

    def local_path(self, cluster):
        return None


def test_ssh_key_of_a_folderless_store_is_copied_private(tmp_path, monkeypatch):
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path / "home"))
    store = FolderlessStore(tmp_path / "store")
    store.write("c", SSH_KEY, b"PRIVATE", secret=True)
    lifecycle.materialize_secrets(store, "c")
    key = lifecycle.workdir(store, "c") / SSH_KEY
    assert key.read_bytes() == b"PRIVATE"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert str(key).startswith(str(tmp_path / "home"))
