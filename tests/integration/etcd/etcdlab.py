"""A lab of three etcd test hosts plus an offline files repository, driven by real playbooks.

The hosts are those of a local cluster spec with three control planes (see ``lab.PodmanLab``,
tests/integration/lab.py). The etcd tarball is the local cloud's, built from Go modules
(``kpyops.clouds.local.files.ensure_etcd``) and published into the lab's own files folder and served by a container on the lab network the way the local cloud serves
it, so the download role's fetch-and-verify path is the real one.
Every container and network is named ``kpe...`` and removed by ``EtcdLab.destroy``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from lab import PodmanLab

from kpyops.clouds.local.files import PORT, ensure_etcd, start_files_server


class EtcdLab(PodmanLab):
    prefix = "kpe"
    tools = ("go",)  # ensure_etcd builds etcd from Go modules (cached after the first time)

    def __init__(self, name: str, workdir: Path, subnet: str):
        self.files_dir = workdir / "files"
        self.version, self.tarball = ensure_etcd(self.files_dir)
        self.sha256 = self.tarball.with_name(self.tarball.name + ".sha256").read_text().split()[0]
        self.files_host = f"{name}-files"
        self.files_ip = f"{subnet.rsplit('.', 1)[0]}.2"
        super().__init__(
            {
                "metadata": {"name": name},
                "spec": {
                    "cloud": "local",
                    "local": {"subnet": subnet},
                    "controlPlane": {"count": 3},
                    "nodeGroups": [{"name": "nodes", "count": 0}],
                    "etcd": {"version": self.version, "backup": {"retain": 3, "encrypt": True}},
                    "artifacts": {
                        "filesRepository": f"http://{self.files_ip}:{PORT}",
                        "items": {"etcd": {"version": self.version, "sha256": self.sha256}},
                    },
                },
            },
            workdir,
        )
        self.containers = [self.files_host]

    def create(self, only: list[str] | None = None) -> None:
        super().create(only)
        start_files_server(self.podman, name=self.files_host, ip=self.files_ip, image=self.image,
                           network=self.network, labels={}, files_dir=self.files_dir,
                           registry_dir=None)

    # the etcd tests read exit codes and stderr: a script's whole CompletedProcess
    sh = PodmanLab.exec

    def etcdctl(self, host: str, args: str, *, endpoints: str | None = None,
                check: bool = True) -> subprocess.CompletedProcess:
        """etcdctl on a member with the healthcheck client certificate (local endpoint by default)."""
        env = ". /etc/etcd/etcdctl.env"
        if endpoints:
            env += f" && export ETCDCTL_ENDPOINTS={endpoints}"
        return self.sh(host, f"{env} && etcdctl {args}", check=check)

    def endpoints(self) -> str:
        return ",".join(f"https://{a}:2379" for a in self.addresses.values())
