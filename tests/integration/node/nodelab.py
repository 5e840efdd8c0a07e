"""A small lab of test hosts for the node roles: podman machines driven by real playbooks.

The hosts are the ones a local cluster's completed spec names (same host names and fixed
addresses), the inventory is rendered by ``kpyops.render.inventory`` from that spec, and
Ansible reaches the hosts with the podman connection (no SSH needed for role tests).
Every container and network is named ``kpc-...`` and removed by ``Lab.destroy``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from kpyops.render.inventory import render_inventory
from kpyops.spec.complete import complete
from kpyops.spec.model import Cluster

ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = ROOT / ".venv" / "bin"
RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.M,
)


def image() -> str:
    from kpyops.clouds.local.image import image_tag

    return image_tag()


def podman_ready() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    if not shutil.which("podman"):
        return "needs podman"
    ref = image()
    if subprocess.run(["podman", "image", "exists", ref]).returncode != 0:
        return f"test-host image {ref} not built (run `kpyops image`)"
    return None


@dataclass
class Run:
    rc: int
    output: str
    recap: dict[str, dict[str, int]]

    def events(self) -> list[tuple[str, str, str]]:
        """(task name, host, status) in the order Ansible reported them."""
        out: list[tuple[str, str, str]] = []
        task = ""
        body = self.output.split("PLAY RECAP")[0]
        for line in body.splitlines():
            m = re.match(r"^(?:TASK|RUNNING HANDLER) \[(?:[^:\]]+ : )?(.*)\] \*+", line)
            if m:
                task = m.group(1)
                continue
            m = re.match(r"^(ok|changed|skipping|fatal|failed): \[([^\]]+)\]", line)
            if m:
                out.append((task, m.group(2).split(" -> ")[0], m.group(1)))
                continue
            m = re.match(r"^included: .* for (.*)$", line)
            if m:
                for host in m.group(1).split(", "):
                    out.append((task, host.strip(), "included"))
        return out

    def changed(self) -> dict[str, int]:
        return {h: r["changed"] for h, r in self.recap.items()}

    def assert_ok(self) -> None:
        assert self.rc == 0, self.output[-6000:]
        for host, r in self.recap.items():
            assert r["failed"] == 0 and r["unreachable"] == 0, f"{host}: {r}\n{self.output[-6000:]}"

    def assert_no_change(self) -> None:
        self.assert_ok()
        changed = {h: c for h, c in self.changed().items() if c}
        assert not changed, f"second converge changed {changed}\n{self.output[-8000:]}"


class Lab:
    """Containers for the hosts of a local cluster spec, plus its rendered inventory."""

    def __init__(self, spec: dict, workdir: Path):
        self.cluster = complete(Cluster.model_validate(spec))
        self.name = self.cluster.name
        assert self.name.startswith("kpc"), "lab clusters are named kpc... (container names)"
        self.network = f"{self.name}-net"
        self.workdir = workdir
        self.inventory = workdir / "inventory"
        self.hosts: list[str] = []

    # --- machines -------------------------------------------------------------------
    def create(self, only: list[str] | None = None) -> None:
        subnet = str(self.cluster.spec.local.subnet)
        subprocess.run(["podman", "network", "rm", "-f", self.network], capture_output=True)
        subprocess.run(
            ["podman", "network", "create", "--subnet", subnet, self.network],
            check=True, capture_output=True,
        )
        ref = image()
        self.write_inventory()
        inv = yaml.safe_load((self.inventory / "hosts.yml").read_text())
        for host, hv in inv["all"]["hosts"].items():
            if only is not None and host not in only:
                continue
            subprocess.run(["podman", "rm", "-f", host], capture_output=True)
            subprocess.run(
                ["podman", "run", "-d", "--name", host, "--hostname", host,
                 "--systemd=always", "--privileged", "--runtime=runc",
                 "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096",
                 "--network", self.network, "--ip", str(hv["kpyops_address"]), ref],
                check=True, capture_output=True,
            )
            self.hosts.append(host)
        for host in self.hosts:
            self.wait_booted(host)

    def wait_booted(self, host: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = subprocess.run(
                ["podman", "exec", host, "systemctl", "is-system-running"],
                capture_output=True, text=True,
            )
            if r.stdout.strip() in ("running", "degraded"):
                return
            time.sleep(0.5)
        raise TimeoutError(f"{host} did not boot")

    def destroy(self) -> None:
        for host in self.hosts:
            subprocess.run(["podman", "rm", "-f", "-t", "0", host], capture_output=True)
        subprocess.run(["podman", "network", "rm", "-f", self.network], capture_output=True)

    # --- inventory and runs ---------------------------------------------------------
    def write_inventory(self, cluster: Cluster | None = None) -> None:
        """Render the inventory for the (possibly changed) spec; podman connection."""
        if cluster is not None:
            self.cluster = complete(cluster)
        state = self.workdir / "state"
        state.mkdir(parents=True, exist_ok=True)
        files = render_inventory(self.cluster, state_dir=str(state))
        for rel, text in files.items():
            path = self.inventory / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        hosts_file = self.inventory / "hosts.yml"
        inv = yaml.safe_load(hosts_file.read_text())
        inv["all"]["vars"] = {"ansible_connection": "containers.podman.podman"}
        for host, hv in inv["all"]["hosts"].items():
            hv["ansible_host"] = host
        hosts_file.write_text(yaml.safe_dump(inv, sort_keys=False))

    def playbook(self, playbook: str | Path, *args: str, extra_vars: dict | None = None,
                 limit: str | None = None, timeout: float = 900) -> Run:
        cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(self.inventory), str(playbook)]
        if limit:
            cmd += ["--limit", limit]
        for k, v in (extra_vars or {}).items():
            cmd += ["-e", yaml.safe_dump({k: v}, default_flow_style=True).strip()]
        cmd += list(args)
        env = dict(os.environ)
        env.update({
            "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
            "ANSIBLE_PIPELINING": "true",
            "ANSIBLE_HOST_KEY_CHECKING": "false",
            "ANSIBLE_FORCE_COLOR": "false",
            "ANSIBLE_NOCOLOR": "true",
            "ANSIBLE_STDOUT_CALLBACK": "default",
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
            "PATH": f"{VENV_BIN}:{env.get('PATH', '')}",
        })
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=timeout)
        out = p.stdout + p.stderr
        recap = {
            m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
            for m in RECAP.finditer(out)
        }
        return Run(p.returncode, out, recap)

    def sh(self, host: str, script: str, check: bool = True) -> str:
        p = subprocess.run(["podman", "exec", host, "bash", "-c", script],
                           capture_output=True, text=True)
        if check and p.returncode != 0:
            raise AssertionError(f"{host}: {script!r} -> {p.returncode}\n{p.stdout}{p.stderr}")
        return p.stdout

    def stat(self, host: str, path: str) -> tuple[str, str]:
        """(octal mode, owner:group) of a path on a host."""
        mode, owner = self.sh(host, f"stat -c '%a %U:%G' {path}").split()
        return mode, owner


FAKE_KUBELET = Path(__file__).with_name("fake_kubelet.py")


def install_fake_kubelet(lab: Lab, hosts: list[str]) -> None:
    """Put the kubelet test double (see fake_kubelet.py) on hosts, with python3-yaml."""
    for host in hosts:
        lab.sh(host, "test -d /var/lib/apt/lists/partial && ls /var/lib/apt/lists | grep -q Packages "
                     "|| apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                     "python3-yaml >/dev/null")
        subprocess.run(["podman", "cp", str(FAKE_KUBELET), f"{host}:/usr/local/bin/kubelet"], check=True)
        lab.sh(host, "chmod 0755 /usr/local/bin/kubelet")
