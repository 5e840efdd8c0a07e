"""containerd role on a real test host: containerd 2.x and runc fetched from the cluster's
files repository and verified, config v3, mirrors, crictl, restarts, idempotence."""

from __future__ import annotations

import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from nodelab import ROOT, Lab

from kpyops.artifacts import COMPONENTS, build, publish
from kpyops.clouds.local.cloud import CONTAINERD_ROOT
from kpyops.clouds.local.files import REGISTRY_PORT, start_files_server

pytestmark = pytest.mark.integration

HOST = "kpcrt-node-1"
SPEC = {
    "metadata": {"name": "kpcrt"},
    "spec": {
        "cloud": "local",
        "local": {"subnet": "10.214.241.0/24"},
        "nodeGroups": [{"name": "node", "count": 1}],
        "containerRuntime": {
            "pauseImage": "registry.k8s.io/pause:3.10",
            "registryMirrors": {
                "docker.io": ["http://10.214.241.2:5000", "https://mirror.example"],
                "quay.io": ["https://quay-mirror.example"],
            },
        },
    },
}


class ContainerdLab(Lab):
    """The lab's hosts as the local cloud starts them (containerd's root on a volume), and
    the cluster's files repository (spec.artifacts.filesRepository) serving containerd and
    runc built from Go modules at the versions the completed spec names."""

    tools = ("go",)  # build() needs it even when the binaries are cached

    def __init__(self, spec: dict, workdir: Path):
        super().__init__(spec, workdir)
        self.files_dir = workdir / "files"
        items = self.cluster.spec.artifacts.items
        for name in ("containerd", "runc"):
            publish(build(COMPONENTS[name], items[name].version), self.files_dir)
        self.files_host = f"{self.name}-files"
        self.files_ip = urlsplit(self.cluster.spec.artifacts.files_repository).hostname
        self.containers = [self.files_host]

    def create(self, only: list[str] | None = None) -> None:
        super().create(only)
        start_files_server(
            self.podman,
            name=self.files_host,
            ip=self.files_ip,
            image=self.image,
            network=self.network,
            labels={},
            files_dir=self.files_dir,
            registry_dir=None,
        )

    def start_host(self, host: str) -> None:
        self.podman.remove_container(host)
        self.podman.start_host(
            name=host,
            image=self.image,
            network=self.network,
            ip=self.addresses[host],
            labels={},
            volumes=[CONTAINERD_ROOT],
        )

    def config(self, host: str) -> dict:
        """containerd's effective configuration (`containerd config dump`), parsed."""
        return tomllib.loads(self.sh(host, "containerd config dump 2>/dev/null"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with ContainerdLab.running(SPEC, tmp_path_factory.mktemp("containerd"), only=[HOST]) as lab:
        yield lab


def test_containerd_converges_runs_and_is_idempotent(lab):
    items = lab.cluster.spec.artifacts.items
    first = lab.playbook(ROOT / "playbooks/containerd.yml", limit=HOST)
    first.assert_ok()
    assert first.changed()[HOST] > 0
    lab.playbook(ROOT / "playbooks/containerd.yml", limit=HOST).assert_no_change()

    # the pinned containerd, fetched from the files repository, runs under systemd
    assert lab.sh(HOST, "systemctl is-active containerd").strip() == "active"
    assert lab.sh(HOST, "systemctl show -p FragmentPath --value containerd").strip() == (
        "/etc/systemd/system/containerd.service"
    )
    server = lab.sh(HOST, "ctr version 2>/dev/null").split("Server:")[1]
    assert f"Version:  v{items['containerd'].version}\n" in server, server
    assert lab.sh(HOST, "command -v containerd runc").split() == [
        "/usr/local/bin/containerd",
        "/usr/local/bin/runc",
    ]
    cached = f"/var/cache/kpyops/downloads/containerd-{items['containerd'].version}"
    assert lab.sh(HOST, f"ls {cached}").split() == [
        f"containerd-{items['containerd'].version}-linux-amd64.tar.gz"
    ]
    runc = lab.sh(HOST, "runc --version").splitlines()
    assert runc[0] == f"runc version {items['runc'].version}", runc

    # containerd itself parses our file: its effective config has what we asked for
    config = lab.config(HOST)
    assert config["version"] == 3
    images = config["plugins"]["io.containerd.cri.v1.images"]
    runtime = config["plugins"]["io.containerd.cri.v1.runtime"]
    assert images["pinned_images"]["sandbox"] == "registry.k8s.io/pause:3.10"
    assert images["registry"]["config_path"] == "/etc/containerd/certs.d"
    # local clusters clamp OOM scores: their hosts lack CAP_SYS_RESOURCE
    assert lab.cluster.spec.container_runtime.restrict_oom_score_adj is True
    assert runtime["restrict_oom_score_adj"] is True
    runc_options = runtime["containerd"]["runtimes"]["runc"]["options"]
    assert runc_options["SystemdCgroup"] is True
    assert runc_options["BinaryName"] == "/usr/local/bin/runc"
    # the CRI plugins loaded (a broken config leaves them listed as error)
    plugins = lab.sh(HOST, "ctr plugins ls 2>/dev/null").splitlines()
    cri = [
        p.split()
        for p in plugins
        if p.startswith(("io.containerd.grpc.v1 ", "io.containerd.cri.v1 "))
    ]
    cri = [p for p in cri if p[0] == "io.containerd.cri.v1" or p[1] == "cri"]
    assert len(cri) == 3 and all(p[-1] == "ok" for p in cri), plugins

    docker = lab.sh(HOST, "cat /etc/containerd/certs.d/docker.io/hosts.toml")
    assert 'server = "https://registry-1.docker.io"' in docker
    assert docker.index("http://10.214.241.2:5000") < docker.index("https://mirror.example")
    assert "quay-mirror.example" in lab.sh(HOST, "cat /etc/containerd/certs.d/quay.io/hosts.toml")
    # local clusters pull registry.k8s.io through the registry beside the files repository
    k8s = lab.sh(HOST, "cat /etc/containerd/certs.d/registry.k8s.io/hosts.toml")
    assert f"http://{lab.files_ip}:{REGISTRY_PORT}" in k8s
    crictl = lab.sh(HOST, "cat /etc/crictl.yaml")
    assert "runtime-endpoint: unix:///run/containerd/containerd.sock" in crictl
    assert lab.stat(HOST, "/etc/containerd/config.toml") == ("644", "root:root")


def test_mirror_change_rewrites_config_and_restarts(lab):
    """Removing a registry from the spec removes its folder; the restart happens once."""
    pid_before = lab.sh(HOST, "systemctl show -p MainPID --value containerd").strip()
    spec = lab.cluster.model_copy(deep=True)
    spec.spec.container_runtime.registry_mirrors = {"docker.io": ["https://other.example"]}
    spec.spec.container_runtime.pause_image = "registry.k8s.io/pause:3.9"
    lab.write_inventory(spec)
    run = lab.playbook(ROOT / "playbooks/containerd.yml", limit=HOST)
    run.assert_ok()
    assert run.output.count("RUNNING HANDLER [containerd : Restart containerd]") == 1
    assert (
        lab.sh(HOST, "test -e /etc/containerd/certs.d/quay.io && echo yes || echo no").strip()
        == "no"
    )
    assert "other.example" in lab.sh(HOST, "cat /etc/containerd/certs.d/docker.io/hosts.toml")
    images = lab.config(HOST)["plugins"]["io.containerd.cri.v1.images"]
    assert images["pinned_images"]["sandbox"] == "registry.k8s.io/pause:3.9"
    pid_after = lab.sh(HOST, "systemctl show -p MainPID --value containerd").strip()
    assert pid_after != pid_before
    assert lab.sh(HOST, "systemctl is-active containerd").strip() == "active"
    lab.playbook(ROOT / "playbooks/containerd.yml", limit=HOST).assert_no_change()
