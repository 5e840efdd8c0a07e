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


# The command of a test host: its systemd, after one fix. On this cgroup v1 machine podman's
# systemd mode, with a private cgroup namespace, leaves the machine's whole name=systemd
# hierarchy mounted at /sys/fs/cgroup/systemd: every host's systemd would put init.scope,
# system.slice and kubepods.slice at that hierarchy's root, shared by all of them, and one
# host's shutdown (podman stop) would stop every other host's kubelet and pods (seen: the
# API servers of two clusters died when a third host stopped). So the host's own cgroup
# there, the one holding its PID 1 (this shell), is bind-mounted over the hierarchy first,
# as kind does on cgroup v1; then systemd starts.
HOST_INIT = """\
own=$(grep -l -x 1 $(find /sys/fs/cgroup/systemd -name cgroup.procs 2>/dev/null) 2>/dev/null | head -1)
own=$(dirname "${own:-/sys/fs/cgroup/systemd/cgroup.procs}")
if [ "$own" != /sys/fs/cgroup/systemd ]; then mount --bind "$own" /sys/fs/cgroup/systemd; fi
exec /sbin/init
"""


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
        self.run([*args, image, "/bin/sh", "-c", HOST_INIT])

    def exec(self, name: str, command: list[str], *, check: bool = True) -> str:
        return self.run(["exec", name, *command], check=check)

    def remove_container(self, name: str) -> None:
        self.run(["rm", "--force", "--volumes", "--time", "0", name], check=False)
