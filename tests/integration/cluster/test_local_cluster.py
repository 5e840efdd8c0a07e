"""A local cluster end to end: real podman machines, real SSH, cluster.yml twice, delete.

Runs the product as a user would (the `kpyops` command), then checks the machines
themselves over SSH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from kpyops import lifecycle
from kpyops.run.ansible import PlaybookFailed
from kpyops.state import LocalStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]
KPYOPS = str(Path(sys.executable).with_name("kpyops"))


def kpyops(state: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [KPYOPS, "--state", str(state), *args], capture_output=True, text=True, timeout=1200
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"kpyops {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def podman_names(label: str) -> list[str]:
    out = subprocess.run(
        ["podman", "ps", "-a", "--filter", f"label={label}", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(c["Names"][0] for c in json.loads(out or "[]"))


def network_exists(name: str) -> bool:
    return subprocess.run(["podman", "network", "exists", name]).returncode == 0


def ssh(state: Path, name: str, host: str, command: str) -> str:
    d = state / "clusters" / name
    ip = next(
        line.split()[0].split(",")[1]
        for line in (d / "ssh/known_hosts").read_text().splitlines()
        if line.startswith(host + ",")
    )
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(d / "ssh/id_ed25519"),
            "-o",
            f"UserKnownHostsFile={d / 'ssh/known_hosts'}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            f"root@{ip}",
            command,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout


@pytest.fixture
def cluster(tmp_path):
    name = f"e2e{uuid.uuid4().hex[:6]}"
    yield tmp_path, name
    # leave nothing behind, even when the test failed
    if (tmp_path / "clusters" / name).exists():
        kpyops(tmp_path, "delete", "cluster", name, "--yes", check=False)
    for c in podman_names(f"kpyops.io/cluster={name}"):
        subprocess.run(["podman", "rm", "-f", "-t", "0", c], capture_output=True)
    subprocess.run(["podman", "network", "rm", "-f", f"kpyops-{name}"], capture_output=True)


def test_create_converge_twice_and_delete(cluster):
    state, name = cluster
    created = kpyops(state, "create", "cluster", name, "--cloud", "local", "--nodes", "2", "--yes")
    assert "converged" in created.stderr
    # no Kubernetes binaries can be had for local machines: the run says what it skipped
    assert f"SKIPPED: no Kubernetes binaries on {name}-node-1" in created.stderr
    # three hosts, and the files repository that served them etcd
    assert podman_names(f"kpyops.io/cluster={name}") == [
        f"{name}-cp-1",
        f"{name}-files",
        f"{name}-node-1",
        f"{name}-node-2",
    ]

    # the second converge changes nothing on any host
    store = LocalStore(state)
    user = lifecycle.load_cluster(store, name, completed=False)
    rerun = lifecycle.apply(store, user, progress=lambda _m: None)
    assert set(rerun.recap) == {f"{name}-cp-1", f"{name}-node-1", f"{name}-node-2"}
    assert {h: r["changed"] for h, r in rerun.recap.items()} == dict.fromkeys(rerun.recap, 0)

    # what the roles did, seen on the machines over SSH with host-key checking on
    modules = ssh(state, name, f"{name}-node-1", "cat /etc/modules-load.d/kpyops.conf")
    listed = {line for line in modules.splitlines() if line and not line.startswith("#")}
    assert listed == {"br_netfilter", "overlay", "nf_conntrack"}  # iptables mode: no ip_vs
    assert ssh(state, name, f"{name}-node-2", "cat /proc/sys/net/ipv4/ip_forward").strip() == "1"
    # every stage ran for real where it can: etcd over TLS, containerd, the proxy, manifests
    cp = f"{name}-cp-1"
    health = ssh(state, name, cp, "ETCDCTL_API=3 /usr/local/bin/etcdctl --endpoints=https://127.0.0.1:2379 "
                 "--cacert=/etc/etcd/pki/ca.crt --cert=/etc/etcd/pki/healthcheck-client.crt "
                 "--key=/etc/etcd/pki/healthcheck-client.key endpoint health 2>&1")
    assert "https://127.0.0.1:2379 is healthy" in health, health
    for host in (cp, f"{name}-node-1", f"{name}-node-2"):
        assert ssh(state, name, host, "systemctl is-active containerd kpyops-proxy").split() == ["active"] * 2
        assert ssh(state, name, host, "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:10256/healthz") == "200"
    assert ssh(state, name, cp, "ls /etc/kubernetes/manifests").split() == [
        "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"]
    hosts = ssh(state, name, f"{name}-cp-1", "cat /etc/hosts")
    assert f"{name}-node-2" in hosts
    assert (
        ssh(state, name, f"{name}-cp-1", "dpkg-query -W -f='${Status}' conntrack")
        == "install ok installed"
    )

    # the plan for hosts (check mode) is read-only and names what drifted
    assert "would change nothing" in kpyops(state, "update", "cluster", name, "--hosts").stderr
    ssh(state, name, f"{name}-node-1", "sysctl -qw net.ipv4.ip_forward=0")
    planned = kpyops(state, "update", "cluster", name, "--hosts")
    assert f"~ host {name}-node-1: kernel_modules : sysctls | Apply values" in planned.stdout
    assert f"host {name}-node-2" not in planned.stdout
    assert ssh(state, name, f"{name}-node-1", "sysctl -n net.ipv4.ip_forward").strip() == "0"
    repaired = lifecycle.apply(store, user, progress=lambda _m: None)
    assert repaired.recap[f"{name}-node-1"]["changed"] == 1
    assert ssh(state, name, f"{name}-node-1", "sysctl -n net.ipv4.ip_forward").strip() == "1"

    # the inventory works without the CLI, like kubespray's
    inventory = state / "clusters" / name / "inventory"
    plain = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i",
            str(inventory),
            "cluster.yml",
            "--tags",
            "kernel_modules",
        ],
        cwd=Path(__file__).resolve().parents[3],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0"},
    )
    assert plain.returncode == 0, plain.stdout[-3000:]
    assert "changed=0" in plain.stdout and "changed=1" not in plain.stdout

    # delete leaves no container, network or state behind
    kpyops(state, "delete", "cluster", name, "--yes")
    assert podman_names(f"kpyops.io/cluster={name}") == []
    assert not network_exists(f"kpyops-{name}")
    assert not (state / "clusters" / name).exists()


def test_bad_input_creates_no_machine(cluster):
    state, name = cluster
    for args in (["--control-planes", "2"], ["--control-planes", "3", "--nodes", "-1"]):
        bad = kpyops(state, "create", "cluster", name, *args, "--yes", check=False)
        assert bad.returncode == 2, bad.stderr
        assert "spec." in bad.stderr and "nothing was changed" in bad.stderr
    assert podman_names(f"kpyops.io/cluster={name}") == []
    assert not network_exists(f"kpyops-{name}")
    assert not (state / "clusters" / name).exists()


def test_failed_converge_is_reported(cluster):
    """A host that cannot install its packages fails the run with Ansible's own words."""
    state, name = cluster
    kpyops(state, "create", "cluster", name, "--nodes", "0", "--yes")
    # take a base package away and leave apt no index and no mirror to get it back from
    subprocess.run(
        [
            "podman",
            "exec",
            f"{name}-cp-1",
            "sh",
            "-c",
            "dpkg -r --force-depends conntrack >/dev/null && rm -rf /var/lib/apt/lists/* "
            "&& echo 'deb http://invalid.invalid/debian bookworm main' > /etc/apt/sources.list",
        ],
        check=True,
    )
    store = LocalStore(state)
    user = lifecycle.load_cluster(store, name, completed=False)
    with pytest.raises(PlaybookFailed) as err:
        lifecycle.apply(store, user, progress=lambda _m: None)
    assert any("fatal: [" + f"{name}-cp-1]" in line for line in err.value.tail), err.value.tail
