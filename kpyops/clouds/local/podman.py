"""A thin, typed wrapper over the podman CLI: the only place kpyops runs podman."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field

# Facts of our machines (DEVELOPERS.md): runc works where crun may not on hybrid cgroups,
# and without CAP_SYS_RESOURCE the default rlimits cannot be raised, so we lower them.
RUNTIME = "runc"
ULIMITS = ("nofile=1024:1024", "nproc=4096:4096")


class PodmanError(RuntimeError):
    pass


@dataclass
class Podman:
    executable: str = "podman"
    env: dict[str, str] = field(default_factory=dict)

    def run(self, args: list[str], *, stdin=None, check: bool = True) -> str:
        proc = subprocess.run(
            [self.executable, *args],
            stdin=stdin,
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
        )
        if check and proc.returncode != 0:
            raise PodmanError(f"podman {' '.join(args[:3])}: {proc.stderr.strip()}")
        return proc.stdout

    def image_exists(self, ref: str) -> bool:
        return subprocess.run([self.executable, "image", "exists", ref]).returncode == 0

    def network_exists(self, name: str) -> bool:
        return subprocess.run([self.executable, "network", "exists", name]).returncode == 0

    def create_network(self, name: str, subnet: str, labels: dict[str, str]) -> None:
        args = ["network", "create", "--subnet", subnet]
        for k, v in labels.items():
            args += ["--label", f"{k}={v}"]
        self.run([*args, name])

    def network_subnets(self) -> dict[str, list[str]]:
        """Every podman network's subnets, by network name."""
        nets = json.loads(self.run(["network", "ls", "--format", "json"]) or "[]")
        return {n["name"]: [s["subnet"] for s in n.get("subnets") or []] for n in nets}

    def remove_network(self, name: str) -> None:
        if self.network_exists(name):
            self.run(["network", "rm", "--force", name])

    def containers(self, label: str) -> list[dict]:
        out = self.run(["ps", "--all", "--filter", f"label={label}", "--format", "json"])
        return json.loads(out or "[]")

    def start_host(
        self,
        *,
        name: str,
        image: str,
        network: str,
        ip: str,
        labels: dict[str, str],
        volumes: list[str] = (),
    ) -> None:
        args = [
            "run", "--detach", "--name", name, "--hostname", name,
            "--systemd=always", "--privileged", f"--runtime={RUNTIME}",
            # its own cgroup namespace: on this cgroup v1 kernel podman shares the
            # machine's by default, and kubelet would then make its cgroups at the
            # machine's root instead of inside the host's
            "--cgroupns=private",
            "--network", network, "--ip", ip,
        ]
        for u in ULIMITS:
            args += ["--ulimit", u]
        for k, v in labels.items():
            args += ["--label", f"{k}={v}"]
        for v in volumes:
            args += ["--volume", v]
        self.run([*args, image])

    def exec(self, name: str, command: list[str], *, check: bool = True) -> str:
        return self.run(["exec", name, *command], check=check)

    def remove_container(self, name: str) -> None:
        self.run(["rm", "--force", "--volumes", "--time", "0", name], check=False)
