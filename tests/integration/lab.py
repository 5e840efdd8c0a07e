"""The test lab the integration suites share: a local cluster spec's hosts as podman machines,
its rendered inventory, and real playbooks run against them.

The hosts are those of the completed spec (same names and fixed addresses as
`kpyops create cluster --cloud local` gives), started, booted and served files the way the
local cloud does it (``kpyops.clouds.local``); the inventory is rendered by
``kpyops.render.inventory`` into ``<workdir>/state/inventory`` (the layout of a real state
folder, so ``pki/``, ``secrets/`` and ``backups/`` land next to it) and Ansible reaches the
hosts with the podman connection (no SSH needed). Each suite subclasses ``PodmanLab`` with
its own name prefix, so its containers and network do not collide with other work.
(tests/integration/conftest.py puts this folder on sys.path.)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from kpyops.clouds.local.cloud import wait_booted
from kpyops.clouds.local.image import image_tag
from kpyops.clouds.local.podman import Podman
from kpyops.render.inventory import render_inventory
from kpyops.spec.complete import complete
from kpyops.spec.hosts import all_hosts
from kpyops.spec.model import Cluster

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.M,
)
# the environment of every lab run: the project's ansible.cfg and roles, plain output (the
# recap and events are parsed), and facts cached in memory only, so every run sees the hosts
# as they are now (a lab's hosts are recreated under the same names)
ANSIBLE_ENV = {
    "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
    "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
    "ANSIBLE_PIPELINING": "true",
    "ANSIBLE_HOST_KEY_CHECKING": "false",
    "ANSIBLE_FORCE_COLOR": "false",
    "ANSIBLE_NOCOLOR": "true",
    "ANSIBLE_STDOUT_CALLBACK": "default",
    "ANSIBLE_RETRY_FILES_ENABLED": "false",
    "ANSIBLE_FACT_CACHING": "memory",
}


@dataclass
class Run:
    """One ansible-playbook run: its exit code, output and parsed PLAY RECAP."""

    rc: int
    output: str
    recap: dict[str, dict[str, int]]
    seconds: float = 0.0

    @classmethod
    def parse(cls, rc: int, output: str, seconds: float = 0.0) -> Run:
        recap = {
            m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
            for m in RECAP.finditer(output)
        }
        return cls(rc, output, recap, seconds)

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

    def assert_ok(self) -> Run:
        assert self.rc == 0, self.output[-8000:]
        for host, r in self.recap.items():
            assert r["failed"] == 0 and r["unreachable"] == 0, f"{host}: {r}\n{self.output[-8000:]}"
        return self

    def assert_no_change(self) -> Run:
        self.assert_ok()
        changed = {h: c for h, c in self.changed().items() if c}
        assert not changed, f"second converge changed {changed}\n{self.output[-10000:]}"
        return self


class PodmanLab:
    """Podman machines for the hosts of a local cluster spec, plus its rendered inventory.

    ``create`` starts the network and every host (or ``only`` some); ``hosts`` lists the
    ones started, ``addresses`` every host's address; ``destroy`` removes them all.
    """

    prefix = "kp"  # subclasses: the prefix of their cluster (and so container) names
    tools: tuple[str, ...] = ()  # host tools the lab needs besides podman

    @classmethod
    def ready(cls) -> str | None:
        """Why the lab cannot run here (root, podman and tools, the test-host image), or None."""
        if os.geteuid() != 0:
            return "needs root"
        for tool in ("podman", *cls.tools):
            if not shutil.which(tool):
                return f"needs {tool}"
        if not Podman().image_exists(image_tag()):
            return f"test-host image {image_tag()} not built (run `kpyops image`)"
        return None

    @classmethod
    @contextmanager
    def running(cls, *args, only: list[str] | None = None, **kwargs) -> Iterator[PodmanLab]:
        """A created lab (``cls(*args, **kwargs)``), destroyed afterwards even when the
        caller's setup fails; the test is skipped where the lab cannot run."""
        why = cls.ready()
        if why:
            pytest.skip(why)
        lab = cls(*args, **kwargs)
        try:
            lab.create(only=only)
            yield lab
        finally:
            lab.destroy()

    def __init__(self, spec: dict, workdir: Path):
        self.cluster = complete(Cluster.model_validate(spec))
        self.name = self.cluster.name
        assert self.name.startswith(self.prefix), (
            f"{type(self).__name__} clusters are named {self.prefix}... (container names)"
        )
        self.network = f"{self.name}-net"
        self.workdir = workdir
        self.state = workdir / "state"
        self.inventory = self.state / "inventory"
        self.podman = Podman()
        self.image = image_tag()
        self.addresses = {h.name: str(h.address) for _, h in all_hosts(self.cluster)}
        self.hosts: list[str] = []
        self.containers: list[str] = []  # others to remove with the lab (files servers)

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    # --- machines -------------------------------------------------------------------
    def create(self, only: list[str] | None = None) -> None:
        self.podman.remove_network(self.network)
        self.podman.create_network(self.network, str(self.cluster.spec.local.subnet), {})
        self.write_inventory()
        self.hosts = [h for h in self.addresses if only is None or h in only]
        for host in self.hosts:
            self.start_host(host)
        for host in self.hosts:
            self.wait_booted(host)

    def start_host(self, host: str) -> None:
        self.podman.remove_container(host)
        self.podman.start_host(name=host, image=self.image, network=self.network,
                               ip=self.addresses[host], labels={})

    def wait_booted(self, host: str) -> None:
        wait_booted(self.podman, host, self.addresses[host])

    def destroy_host(self, host: str) -> None:
        self.podman.remove_container(host)

    def destroy(self) -> None:
        for name in [*self.hosts, *self.containers]:
            self.podman.remove_container(name)
        self.podman.remove_network(self.network)

    # --- inventory and runs ---------------------------------------------------------
    def write_inventory(self, cluster: Cluster | None = None) -> None:
        """Render the inventory for the (possibly changed) spec; podman connection."""
        if cluster is not None:
            self.cluster = complete(cluster)
        self.state.mkdir(parents=True, exist_ok=True)
        for rel, text in render_inventory(self.cluster, state_dir=str(self.state)).items():
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
        """ansible-playbook on the lab's inventory (a relative playbook path is from ROOT)."""
        cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(self.inventory), str(ROOT / playbook)]
        if limit:
            cmd += ["--limit", limit]
        for k, v in (extra_vars or {}).items():
            cmd += ["-e", yaml.safe_dump({k: v}, default_flow_style=True).strip()]
        cmd += list(args)
        env = {**os.environ, **ANSIBLE_ENV, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
        start = time.monotonic()
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        return Run.parse(p.returncode, p.stdout + p.stderr, time.monotonic() - start)

    def exec(self, host: str, script: str, check: bool = True) -> subprocess.CompletedProcess:
        """A bash script on a host; with check, a failure is an AssertionError with its output."""
        p = subprocess.run([self.podman.executable, "exec", host, "bash", "-c", script],
                           capture_output=True, text=True)
        if check and p.returncode != 0:
            raise AssertionError(f"{host}: {script!r} -> {p.returncode}\n{p.stdout}{p.stderr}")
        return p

    def stat(self, host: str, path: str) -> tuple[str, str]:
        """(octal mode, owner:group) of a path on a host."""
        mode, owner = self.exec(host, f"stat -c '%a %U:%G' {path}").stdout.split()
        return mode, owner
