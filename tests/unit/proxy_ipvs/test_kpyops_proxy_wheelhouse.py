"""The control-machine side of the kpyops_proxy role: which wheel is built, and when."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path

import pytest
from packaging.requirements import Requirement
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


def test_requirements_are_the_proxy_extra_and_what_it_needs_in_turn(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        "[project]\nname = 'kpyops'\n[project.optional-dependencies]\n"
        "proxy = ['urllib3>=2', 'click; python_version < \"3\"', 'PyYAML']\n"
    )
    reqs = wheelhouse.proxy_requirements(tmp_path)
    # markers are evaluated here; names come out as pip freeze spells them
    assert wheelhouse.closure(reqs) == ["pyyaml", "urllib3"]
    assert wheelhouse.closure(reqs, skip={"PyYAML"}) == ["urllib3"]
    # a requirement this machine lacks, or at another version, is named
    with pytest.raises(SystemExit, match="no-such-package-kpb"):
        wheelhouse.closure([Requirement("no-such-package-kpb")])
    with pytest.raises(SystemExit, match=r"urllib3>=999, .* is installed here"):
        wheelhouse.closure([Requirement("urllib3>=999")])


def test_a_project_without_the_proxy_extra_is_refused(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'kpyops'\n")
    with pytest.raises(SystemExit, match=r"optional-dependencies\.proxy"):
        wheelhouse.proxy_requirements(tmp_path)


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
