"""containerd role on a real test host: package, config, mirrors, crictl, idempotence."""

from __future__ import annotations

import pytest
from nodelab import ROOT, Lab

pytestmark = pytest.mark.integration

SPEC = {
    "metadata": {"name": "kpcrt"},
    "spec": {
        "cloud": "local",
        "local": {"subnet": "10.213.241.0/24"},
        "nodeGroups": [{"name": "node", "count": 1}],
        "containerRuntime": {
            "pauseImage": "registry.k8s.io/pause:3.10",
            "registryMirrors": {
                "docker.io": ["http://10.213.241.2:5000", "https://mirror.example"],
                "quay.io": ["https://quay-mirror.example"],
            },
        },
    },
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with Lab.running(SPEC, tmp_path_factory.mktemp("containerd"), only=["kpcrt-node-1"]) as lab:
        yield lab


def test_containerd_converges_runs_and_is_idempotent(lab):
    host = "kpcrt-node-1"
    first = lab.playbook(ROOT / "playbooks/containerd.yml", limit=host)
    first.assert_ok()
    assert first.changed()[host] > 0
    lab.playbook(ROOT / "playbooks/containerd.yml", limit=host).assert_no_change()

    assert lab.sh(host, "systemctl is-active containerd").strip() == "active"
    # containerd itself parses our file: its effective config has what we asked for
    dump = lab.sh(host, "containerd config dump")
    assert "SystemdCgroup = true" in dump
    assert 'sandbox_image = "registry.k8s.io/pause:3.10"' in dump
    assert 'config_path = "/etc/containerd/certs.d"' in dump
    # the CRI plugin loaded (a broken config disables it and ctr lists it as error)
    plugins = lab.sh(host, "ctr plugins ls")
    cri = [line for line in plugins.splitlines() if "io.containerd.grpc.v1" in line and " cri " in f" {line} "]
    assert cri and all(line.split()[-1] == "ok" for line in cri), plugins
    assert "runc version" in lab.sh(host, "runc --version")

    docker = lab.sh(host, "cat /etc/containerd/certs.d/docker.io/hosts.toml")
    assert 'server = "https://registry-1.docker.io"' in docker
    assert docker.index("http://10.213.241.2:5000") < docker.index("https://mirror.example")
    assert "quay-mirror.example" in lab.sh(host, "cat /etc/containerd/certs.d/quay.io/hosts.toml")
    crictl = lab.sh(host, "cat /etc/crictl.yaml")
    assert "runtime-endpoint: unix:///run/containerd/containerd.sock" in crictl
    assert lab.stat(host, "/etc/containerd/config.toml") == ("644", "root:root")


def test_mirror_change_rewrites_config_and_restarts(lab):
    """Removing a registry from the spec removes its folder; the restart happens once."""
    host = "kpcrt-node-1"
    pid_before = lab.sh(host, "systemctl show -p MainPID --value containerd").strip()
    spec = lab.cluster.model_copy(deep=True)
    spec.spec.container_runtime.registry_mirrors = {"docker.io": ["https://other.example"]}
    spec.spec.container_runtime.pause_image = "registry.k8s.io/pause:3.9"
    lab.write_inventory(spec)
    run = lab.playbook(ROOT / "playbooks/containerd.yml", limit=host)
    run.assert_ok()
    assert "RUNNING HANDLER [containerd : Restart containerd]" in run.output
    assert lab.sh(host, "test -e /etc/containerd/certs.d/quay.io && echo yes || echo no").strip() == "no"
    assert "other.example" in lab.sh(host, "cat /etc/containerd/certs.d/docker.io/hosts.toml")
    assert 'sandbox_image = "registry.k8s.io/pause:3.9"' in lab.sh(host, "containerd config dump")
    pid_after = lab.sh(host, "systemctl show -p MainPID --value containerd").strip()
    assert pid_after != pid_before
    lab.playbook(ROOT / "playbooks/containerd.yml", limit=host).assert_no_change()
