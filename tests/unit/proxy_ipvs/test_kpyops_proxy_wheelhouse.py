"""The control-machine side of the kpyops_proxy role: which wheel is built, and when."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path

from rolerender import ROLES

SCRIPT = ROLES / "kpyops_proxy" / "files" / "wheelhouse.py"
spec = importlib.util.spec_from_file_location("wheelhouse", SCRIPT)
wheelhouse = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wheelhouse)


def tree(tmp_path: Path) -> Path:
    (tmp_path / "kpyops" / "proxy").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'kpyops'\n")
    (tmp_path / "kpyops" / "__init__.py").write_text("")
    (tmp_path / "kpyops" / "proxy" / "x.py").write_text("A = 1\n")
    return tmp_path


def test_pins_use_the_control_machine_versions_in_pip_freeze_spelling():
    assert wheelhouse.pin("prometheus_client") == (
        f"prometheus-client=={importlib.metadata.version('prometheus_client')}"
    )
    assert wheelhouse.pin("no-such-package-kpb") == "no-such-package-kpb"


def test_tree_hash_follows_the_code_not_the_caches(tmp_path):
    root = tree(tmp_path)
    first = wheelhouse.tree_hash(root, ["click==1"])
    (root / "kpyops" / "proxy" / "__pycache__").mkdir()
    (root / "kpyops" / "proxy" / "__pycache__" / "x.cpython-312.pyc").write_bytes(b"\0")
    assert wheelhouse.tree_hash(root, ["click==1"]) == first
    assert wheelhouse.tree_hash(root, ["click==2"]) != first
    (root / "kpyops" / "proxy" / "x.py").write_text("A = 2\n")
    assert wheelhouse.tree_hash(root, ["click==1"]) != first


def test_prune_keeps_the_newest_folders_and_the_current_one(tmp_path):
    folders = []
    for i in range(6):
        d = tmp_path / f"h{i}"
        d.mkdir()
        os.utime(d, (1000 + i, 1000 + i))
        folders.append(d)
    wheelhouse.prune(tmp_path, keep=folders[0])
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["h0", "h4", "h5"]
