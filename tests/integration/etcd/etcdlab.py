"""A lab of three etcd test hosts plus an offline files repository, driven by real playbooks.

The hosts are those of a local cluster spec with three control planes (same names and fixed
addresses as `kpyops create cluster --cloud local` gives); the inventory is rendered by
``kpyops.render.inventory`` and Ansible reaches the hosts with the podman connection.
The etcd tarball is built from Debian's etcd-server/etcd-client packages and served by a
container on the lab network, so the download role's fetch-and-verify path is the real one.
Every container and network is named ``kpe...`` and removed by ``EtcdLab.destroy``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from kpyops.render.inventory import render_inventory
from kpyops.spec.complete import complete
from kpyops.spec.model import Cluster

ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = ROOT / ".venv" / "bin"
BUILD_CACHE = Path("/tmp/kpe-etcd-build")
RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.M,
)


def image() -> str:
    from kpyops.clouds.local.image import image_tag

    return image_tag()


def lab_ready() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("podman", "apt-get", "dpkg"):
        if not shutil.which(tool):
            return f"needs {tool}"
    if subprocess.run(["podman", "image", "exists", image()]).returncode != 0:
        return f"test-host image {image()} not built (run `kpyops image`)"
    return None


def debian_etcd_tarball(out_dir: Path) -> tuple[str, Path, str]:
    """Build etcd-v<version>-linux-amd64.tar.gz (etcd, etcdctl) from Debian's packages.

    Returns (version, tarball, sha256). The .debs are fetched with apt-get download once and
    cached in /tmp/kpe-etcd-build.
    """
    BUILD_CACHE.mkdir(parents=True, exist_ok=True)
    debs = sorted(BUILD_CACHE.glob("etcd-server_*.deb")) + sorted(
        BUILD_CACHE.glob("etcd-client_*.deb")
    )
    if len(debs) < 2:
        subprocess.run(
            ["apt-get", "download", "etcd-server", "etcd-client"],
            cwd=BUILD_CACHE,
            check=True,
            capture_output=True,
        )
        debs = sorted(BUILD_CACHE.glob("etcd-server_*.deb")) + sorted(
            BUILD_CACHE.glob("etcd-client_*.deb")
        )
    version = re.match(r"etcd-server_(\d+\.\d+\.\d+)", debs[0].name)[1]
    unpacked = BUILD_CACHE / "x"
    if not (unpacked / "usr/bin/etcdctl").exists():
        for deb in debs:
            subprocess.run(["dpkg", "-x", str(deb), str(unpacked)], check=True)
    top = f"etcd-v{version}-linux-amd64"
    tarball = out_dir / "etcd" / version / f"{top}.tar.gz"
    tarball.parent.mkdir(parents=True, exist_ok=True)
    # Reproducible: fixed mtimes and owners, so the same packages give the same sha256.
    with gzip.GzipFile(tarball, "wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for binary in ("etcd", "etcdctl"):
            info = tar.gettarinfo(unpacked / "usr/bin" / binary, arcname=f"{top}/{binary}")
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
            info.mode = 0o755
            with open(unpacked / "usr/bin" / binary, "rb") as f:
                tar.addfile(info, f)
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    return version, tarball, digest


@dataclass
class Run:
    rc: int
    output: str
    recap: dict[str, dict[str, int]]
    seconds: float

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


class EtcdLab:
    def __init__(self, name: str, workdir: Path, subnet: str):
        assert name.startswith("kpe"), "lab clusters are named kpe... (container names)"
        self.name = name
        self.network = f"{name}-net"
        self.workdir = workdir
        self.subnet = subnet
        self.state = workdir / "state"
        self.inventory = self.state / "inventory"
        self.files_dir = workdir / "files"
        self.files_host = f"{name}-files"
        self.version, self.tarball, self.sha256 = debian_etcd_tarball(self.files_dir)
        gw = subnet.rsplit(".", 1)[0]
        self.files_ip = f"{gw}.2"
        self.spec = {
            "metadata": {"name": name},
            "spec": {
                "cloud": "local",
                "local": {"subnet": subnet},
                "controlPlane": {"count": 3},
                "nodeGroups": [{"name": "nodes", "count": 0}],
                "etcd": {"version": self.version, "backup": {"retain": 3, "encrypt": True}},
                "artifacts": {
                    "filesRepository": f"http://{self.files_ip}:8080",
                    "items": {"etcd": {"version": self.version, "sha256": self.sha256}},
                },
            },
        }
        self.cluster = complete(Cluster.model_validate(self.spec))
        self.hosts = [h.name for h in self.cluster.spec.control_plane.hosts]
        self.addresses = {h.name: str(h.address) for h in self.cluster.spec.control_plane.hosts}

    # --- machines -------------------------------------------------------------------
    def create(self) -> None:
        subprocess.run(["podman", "network", "rm", "-f", self.network], capture_output=True)
        subprocess.run(
            ["podman", "network", "create", "--subnet", self.subnet, self.network],
            check=True,
            capture_output=True,
        )
        self.write_inventory()
        subprocess.run(["podman", "rm", "-f", self.files_host], capture_output=True)
        subprocess.run(
            [
                "podman",
                "run",
                "-d",
                "--name",
                self.files_host,
                "--runtime=runc",
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=4096:4096",
                "--network",
                self.network,
                "--ip",
                self.files_ip,
                "-v",
                f"{self.files_dir}:/srv:ro",
                image(),
                "python3",
                "-m",
                "http.server",
                "-d",
                "/srv",
                "8080",
            ],
            check=True,
            capture_output=True,
        )
        for host in self.hosts:
            self.start_host(host)
        for host in self.hosts:
            self.wait_booted(host)

    def start_host(self, host: str) -> None:
        subprocess.run(["podman", "rm", "-f", "-t", "0", host], capture_output=True)
        subprocess.run(
            [
                "podman",
                "run",
                "-d",
                "--name",
                host,
                "--hostname",
                host,
                "--systemd=always",
                "--privileged",
                "--runtime=runc",
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=4096:4096",
                "--network",
                self.network,
                "--ip",
                self.addresses[host],
                image(),
            ],
            check=True,
            capture_output=True,
        )

    def destroy_host(self, host: str) -> None:
        subprocess.run(["podman", "rm", "-f", "-t", "0", host], capture_output=True)

    def wait_booted(self, host: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = subprocess.run(
                ["podman", "exec", host, "systemctl", "is-system-running"],
                capture_output=True,
                text=True,
            )
            if r.stdout.strip() in ("running", "degraded"):
                return
            time.sleep(0.5)
        raise TimeoutError(f"{host} did not boot")

    def destroy(self) -> None:
        for host in [*self.hosts, self.files_host]:
            subprocess.run(["podman", "rm", "-f", "-t", "0", host], capture_output=True)
        subprocess.run(["podman", "network", "rm", "-f", self.network], capture_output=True)

    # --- inventory and runs ---------------------------------------------------------
    def write_inventory(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        files = render_inventory(self.cluster, state_dir=str(self.state))
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

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    def playbook(
        self, playbook: str, *args: str, extra_vars: dict | None = None, timeout: float = 900
    ) -> Run:
        cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(self.inventory), str(ROOT / playbook)]
        for k, v in (extra_vars or {}).items():
            cmd += ["-e", yaml.safe_dump({k: v}, default_flow_style=True).strip()]
        cmd += list(args)
        env = dict(os.environ)
        env.update(
            {
                "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
                "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
                "ANSIBLE_FORCE_COLOR": "false",
                "ANSIBLE_NOCOLOR": "true",
                "ANSIBLE_STDOUT_CALLBACK": "default",
                "ANSIBLE_FACT_CACHING": "memory",
                "PATH": f"{VENV_BIN}:{env.get('PATH', '')}",
            }
        )
        start = time.monotonic()
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        out = p.stdout + p.stderr
        recap = {
            m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
            for m in RECAP.finditer(out)
        }
        return Run(p.returncode, out, recap, time.monotonic() - start)

    def sh(self, host: str, script: str, check: bool = True) -> subprocess.CompletedProcess:
        p = subprocess.run(
            ["podman", "exec", host, "bash", "-c", script], capture_output=True, text=True
        )
        if check and p.returncode != 0:
            raise AssertionError(f"{host}: {script!r} -> {p.returncode}\n{p.stdout}{p.stderr}")
        return p

    def etcdctl(self, host: str, args: str, *, endpoints: str | None = None,
                check: bool = True) -> subprocess.CompletedProcess:
        """etcdctl on a member with the healthcheck client certificate (local endpoint by default)."""
        env = ". /etc/etcd/etcdctl.env"
        if endpoints:
            env += f" && export ETCDCTL_ENDPOINTS={endpoints}"
        return self.sh(host, f"{env} && etcdctl {args}", check=check)

    def endpoints(self) -> str:
        return ",".join(f"https://{a}:2379" for a in self.addresses.values())


if __name__ == "__main__":
    # python etcdlab.py OUT_DIR: build the tarball into OUT_DIR/etcd/<version>/ and print
    # {"version", "file", "path", "sha256"} (used by the etcd role's Molecule scenario).
    import json
    import sys

    v, path, digest = debian_etcd_tarball(Path(sys.argv[1]))
    print(json.dumps({"version": v, "file": path.name, "path": str(path), "sha256": digest}))
