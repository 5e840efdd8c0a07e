"""The local folder state store: layout, modes, atomic writes, and the lock."""

from __future__ import annotations

import multiprocessing
import stat

import pytest

from kpyops.state import LocalStore, LockHeld, StateError


def test_write_read_list_and_modes(tmp_path):
    store = LocalStore(tmp_path)
    store.write_text("c1", "spec.yaml", "a: 1\n")
    store.write("c1", "ssh/id_ed25519", b"KEY", secret=True)
    assert store.read_text("c1", "spec.yaml") == "a: 1\n"
    assert store.list("c1") == ["spec.yaml", "ssh/id_ed25519"]
    assert store.clusters() == ["c1"]
    key = tmp_path / "clusters/c1/ssh/id_ed25519"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "clusters/c1").stat().st_mode) == 0o700
    store.delete_cluster("c1")
    assert store.clusters() == []


def test_keys_cannot_escape_the_cluster_folder(tmp_path):
    with pytest.raises(StateError):
        LocalStore(tmp_path).write_text("c1", "../c2/spec.yaml", "x")


def _try_lock(root: str, queue) -> None:
    try:
        with LocalStore(root).lock("c1", purpose="second"):
            queue.put("got it")
    except LockHeld as err:
        queue.put(str(err))


def test_lock_excludes_a_second_run(tmp_path):
    store = LocalStore(tmp_path)
    queue = multiprocessing.Queue()
    with store.lock("c1", purpose="first run"):
        p = multiprocessing.Process(target=_try_lock, args=(str(tmp_path), queue))
        p.start()
        p.join(10)
        msg = queue.get(timeout=5)
        assert "locked by" in msg and "first run" in msg
    # released: the next run gets it
    p = multiprocessing.Process(target=_try_lock, args=(str(tmp_path), queue))
    p.start()
    p.join(10)
    assert queue.get(timeout=5) == "got it"


def test_the_store_root_and_every_folder_in_it_are_private(tmp_path):
    root = tmp_path / "state"
    root.mkdir(mode=0o755)
    root.chmod(0o755)  # made by someone else, readable by all: tightened on first write
    store = LocalStore(root)
    store.write_text("c1", "pki/etcd/ca.crt", "x")
    with store.lock("c2", purpose="a lock makes its folder too"):
        pass
    folders = [root, root / "clusters", root / "clusters/c1", root / "clusters/c1/pki",
               root / "clusters/c1/pki/etcd", root / "clusters/c2"]
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in folders} == {
        f.name: 0o700 for f in folders}


def test_local_locks_end_with_their_process_so_there_is_nothing_to_break(tmp_path):
    with pytest.raises(StateError, match="end with the process"):
        LocalStore(tmp_path).break_lock("c1", "host/1")


def test_cache_folders_of_a_remote_store_are_private(tmp_path, monkeypatch):
    from pathlib import Path

    from kpyops.state import workdir

    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path / "home"))
    (tmp_path / "home" / ".cache").mkdir(parents=True, mode=0o755)
    workdir._write_private(workdir.cache_dir("c1") / "pki" / "ca.key", b"k")
    base = tmp_path / "home/.cache/kpyops/clusters"
    for f in (base, base / "c1", base / "c1/pki"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o700, f
    assert stat.S_IMODE((base / "c1/pki/ca.key").stat().st_mode) == 0o600
