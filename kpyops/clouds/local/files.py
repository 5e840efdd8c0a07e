"""The offline files repository of local clusters: artifacts served on the cluster network.

Local clusters cannot reach release servers, so kpyops builds the artifacts it can from
Debian's packages (etcd and etcdctl from etcd-server/etcd-client), lays them out as a files
repository (<name>/<version>/<file> plus <file>.sha256), and serves that folder read-only
from a small container on the cluster's network. Hosts then fetch and verify them through
the same download code path as a real mirror.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

from kpyops.spec.complete import LOCAL_FILES_PORT

FILES_DIR = Path.home() / ".cache" / "kpyops" / "files"
DEB_CACHE = Path.home() / ".cache" / "kpyops" / "debs"
PORT = LOCAL_FILES_PORT


class FilesError(RuntimeError):
    pass


def _debs(packages: list[str]) -> list[Path]:
    DEB_CACHE.mkdir(parents=True, exist_ok=True)
    found = [sorted(DEB_CACHE.glob(f"{p}_*.deb")) for p in packages]
    if not all(found):
        proc = subprocess.run(["apt-get", "download", *packages], cwd=DEB_CACHE,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise FilesError(f"apt-get download {' '.join(packages)}: {proc.stderr.strip()}")
        found = [sorted(DEB_CACHE.glob(f"{p}_*.deb")) for p in packages]
    return [f[-1] for f in found]


def _write_sha256(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    return digest


def ensure_etcd(version: str, files_dir: Path = FILES_DIR) -> Path:
    """etcd/<version>/etcd-v<version>-linux-amd64.tar.gz, built from Debian's packages."""
    top = f"etcd-v{version}-linux-amd64"
    tarball = files_dir / "etcd" / version / f"{top}.tar.gz"
    if tarball.exists() and tarball.with_name(tarball.name + ".sha256").exists():
        return tarball
    debs = _debs(["etcd-server", "etcd-client"])
    found = re.match(r"etcd-server_(\d+\.\d+\.\d+)", debs[0].name)
    if not found or found[1] != version:
        raise FilesError(
            f"Debian's etcd is {found[1] if found else '?'}, the spec asks for {version}: set "
            "spec.etcd.version to Debian's, or give spec.artifacts a URL or files repository"
        )
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for deb in debs:
            subprocess.run(["dpkg", "-x", str(deb), tmp], check=True)
        # reproducible: fixed times and owners, so the same packages give the same sha256
        with gzip.GzipFile(tarball, "wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
            for binary in ("etcd", "etcdctl"):
                src = Path(tmp) / "usr" / "bin" / binary
                info = tar.gettarinfo(src, arcname=f"{top}/{binary}")
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
                info.mode = 0o755
                with open(src, "rb") as f:
                    tar.addfile(info, f)
    _write_sha256(tarball)
    return tarball
