"""The offline files repository and registry of local clusters, served on their network.

Local clusters reach no release server and no public registry. ``kpyops.artifacts`` builds
every component from Go modules into a files repository (``<name>/<version>/<file>`` plus
``<file>.sha256``) and images; one small container per cluster serves that folder
read-only over HTTP and runs a real registry (Debian's docker-registry) that the images
are pushed into. Hosts fetch and verify binaries, and containerd pulls registry.k8s.io
images through a mirror, exactly as an air-gapped production cluster does.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from kpyops.artifacts import COMPONENTS, build, publish
from kpyops.artifacts.files import FILES_DIR
from kpyops.clouds.local.complete import LOCAL_FILES_PORT, LOCAL_REGISTRY_PORT
from kpyops.clouds.local.podman import RUNTIME, ULIMITS, Podman

PORT = LOCAL_FILES_PORT
REGISTRY_PORT = LOCAL_REGISTRY_PORT
REGISTRY_BINARY = Path("/usr/bin/docker-registry")  # Debian's docker-registry package
REGISTRY_DIR = Path.home() / ".cache" / "kpyops" / "registry"
REGISTRY_CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :{port}
"""

__all__ = ["FILES_DIR", "PORT", "REGISTRY_PORT", "ensure_etcd", "start_files_server"]


class FilesError(RuntimeError):
    pass


def ensure_etcd(files_dir: Path = FILES_DIR, progress=lambda _m: None) -> tuple[str, Path]:
    """The pinned etcd, built from Go modules and published: (version, tarball path)."""
    etcd = COMPONENTS["etcd"]
    built = build(etcd, progress=progress)
    publish(built, files_dir)
    return built.version, files_dir / "etcd" / built.version / etcd.file_name(built.version)


def start_files_server(podman: Podman, *, name: str, ip: str, image: str, network: str,
                       labels: dict[str, str], files_dir: Path = FILES_DIR,
                       registry_dir: Path | None = REGISTRY_DIR) -> None:
    """files_dir served read-only over HTTP on ip:PORT and, unless registry_dir is None, a
    registry on ip:REGISTRY_PORT storing into registry_dir; returns once both answer."""
    podman.remove_container(name)
    files_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "run", "--detach", "--name", name, "--hostname", name, f"--runtime={RUNTIME}",
        *[a for u in ULIMITS for a in ("--ulimit", u)],
        "--network", network, "--ip", ip, *[a for k, v in labels.items() for a in ("--label", f"{k}={v}")],
        "--volume", f"{files_dir}:/srv:ro", "--read-only",
    ]
    serve_files = f"python3 -m http.server --directory /srv {PORT}"
    if registry_dir is None:
        command = f"exec {serve_files}"
    else:
        if not REGISTRY_BINARY.exists():
            raise FilesError(f"{REGISTRY_BINARY} is missing: install Debian's docker-registry (scripts/setup)")
        registry_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = registry_dir.parent / "registry.yml"
        config.write_text(REGISTRY_CONFIG.format(port=REGISTRY_PORT))
        args += [
            "--volume", f"{REGISTRY_BINARY}:/usr/local/bin/registry:ro",
            "--volume", f"{config}:/etc/registry.yml:ro",
            "--volume", f"{registry_dir}:/var/lib/registry",
        ]
        # two servers, one container: when either ends, the container ends with it
        command = f"{serve_files} & /usr/local/bin/registry serve /etc/registry.yml & wait -n; exit 1"
    podman.run([*args, image, "bash", "-c", command])
    ports = [PORT] if registry_dir is None else [PORT, REGISTRY_PORT]
    deadline = time.monotonic() + 30
    while not all(port_open(ip, p) for p in ports):
        if time.monotonic() > deadline:
            raise FilesError(f"files repository {name} did not answer on {ip}:{ports}")
        time.sleep(0.3)


def port_open(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=1):
            return True
    except OSError:
        return False
