"""cluster.yml's version guard (the control_plane role's version_guard entry point), run by
ansible-playbook on this machine against a kubectl double: the same version passes, another
one is refused with what to run instead unless a batch of an upgrade allows it, and a cluster
whose API does not answer (a new one) is not held back. On a real cluster:
tests/integration/cluster/test_upgrade.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOUBLE = ROOT / "tests" / "doubles" / "kubectl_version"
PLAYBOOK = """
- hosts: k8s_cluster
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: control_plane
        tasks_from: version_guard.yml
    - ansible.builtin.debug:
        msg: "running={{ control_plane_running_version }}"
"""


@pytest.fixture
def run(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy(DOUBLE, bin_dir / "kubectl")
    (tmp_path / "hosts.yml").write_text(
        "all:\n  vars: {ansible_connection: local, ansible_python_interpreter: " + sys.executable + "}\n"
        "  children:\n    k8s_cluster:\n      children:\n        kube_control_plane:\n"
        "          hosts: {cp1: {}}\n        kube_node:\n          hosts: {node1: {}}\n")
    (tmp_path / "guard.yml").write_text(PLAYBOOK)

    def play(server: str, version: str = "1.35.4", *extra: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
               "KUBECTL_DOUBLE_SERVER": server, "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
               "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"}
        return subprocess.run(
            [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(tmp_path / "hosts.yml"),
             str(tmp_path / "guard.yml"), "-e", f"kpyops_kubernetes_version={version}", *extra],
            capture_output=True, text=True, env=env, timeout=300)
    return play


def test_the_running_version_passes(run):
    done = run("v1.35.4")
    assert done.returncode == 0, done.stdout
    assert done.stdout.count("running=v1.35.4") == 2  # every host knows it


def test_another_version_is_refused_with_what_to_run(run):
    refused = run("v1.34.4")
    assert refused.returncode != 0
    assert "runs Kubernetes v1.34.4 and this inventory says 1.35.4" in refused.stdout
    assert "kpyops upgrade cluster NAME --kubernetes-version 1.35.4" in refused.stdout
    assert "running=" not in refused.stdout  # nothing after it ran


def test_a_batch_of_an_upgrade_may_change_it(run):
    done = run("v1.34.4", "1.35.4", "-e", "control_plane_version_change_allowed=true")
    assert done.returncode == 0 and "running=v1.34.4" in done.stdout, done.stdout


def test_an_api_that_does_not_answer_holds_nothing_back(run):
    done = run("")
    assert done.returncode == 0 and done.stdout.count('"msg": "running="') == 2, done.stdout
