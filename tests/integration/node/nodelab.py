"""The node roles' lab: podman machines for a local cluster spec, driven by real playbooks.

See ``lab.PodmanLab`` (tests/integration/lab.py). Every container and network is named
``kpc-...`` and removed by ``Lab.destroy``.
"""

from __future__ import annotations

from pathlib import Path

from lab import ROOT, PodmanLab

__all__ = ["ROOT", "Lab", "install_fake_kubelet"]

FAKE_KUBELET = Path(__file__).with_name("fake_kubelet.py")


class Lab(PodmanLab):
    """Containers for the hosts of a local cluster spec (``create(only=...)``: some of them)."""

    prefix = "kpc"

    def sh(self, host: str, script: str, check: bool = True) -> str:
        """A bash script's stdout on a host (a failure is an AssertionError with its output)."""
        return self.exec(host, script, check=check).stdout


def install_fake_kubelet(lab: Lab, hosts: list[str]) -> None:
    """Put the kubelet test double (see fake_kubelet.py) on hosts, with python3-yaml."""
    for host in hosts:
        lab.sh(host, "test -d /var/lib/apt/lists/partial && ls /var/lib/apt/lists | grep -q Packages "
                     "|| apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                     "python3-yaml >/dev/null")
        lab.podman.run(["cp", str(FAKE_KUBELET), f"{host}:/usr/local/bin/kubelet"])
        lab.sh(host, "chmod 0755 /usr/local/bin/kubelet")
