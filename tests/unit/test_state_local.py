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
