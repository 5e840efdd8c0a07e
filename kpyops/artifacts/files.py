"""Lay built components out as a files repository: ``<artifact>/<version>/<file>`` plus
``<file>.sha256``, with the upstream releases' file names and archive layouts, so a host
fetches and verifies from it exactly as it would from the release servers.

Archives are reproducible (fixed times, owners and order): the same binaries give the same
sha256, so republishing changes nothing a host would notice.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

from kpyops.artifacts.build import Built

FILES_DIR = Path(os.environ.get("KPYOPS_FILES_DIR", Path.home() / ".cache" / "kpyops" / "files"))


def publish(built: Built, files_dir: Path = FILES_DIR) -> dict[str, str]:
    """Write the component's files; return {"<artifact>/<version>/<file>": sha256}."""
    c, v = built.component, built.version
    out: dict[str, str] = {}
    if c.layout == "binaries":
        for name in built.sha256:
            dest = files_dir / name / v / name
            _place(built.path(name), dest)
            out[f"{name}/{v}/{name}"] = _write_sha256(dest)
    elif c.layout == "file":
        (name,) = built.sha256
        dest = files_dir / c.name / v / c.file_name(v)
        _place(built.path(name), dest)
        out[f"{c.name}/{v}/{dest.name}"] = _write_sha256(dest)
    elif c.layout == "tarball":
        dest = files_dir / c.name / v / c.file_name(v)
        record = dest.with_name(dest.name + ".built-from")
        # the archive is remade only when the binaries in it changed
        if not (dest.exists() and record.exists() and record.read_text() == _sources(built)):
            _write_tarball(built, dest)
            record.write_text(_sources(built))
        out[f"{c.name}/{v}/{dest.name}"] = _write_sha256(dest)
    return out


def _place(src: Path, dest: Path) -> None:
    if dest.exists() and _sha256(dest) == _sha256(src):
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(src.read_bytes())
    tmp.chmod(0o755)
    tmp.replace(dest)


def _tarball_bytes(built: Built) -> bytes:
    buf = io.BytesIO()
    prefix = built.component.archive_prefix.format(v=built.version)
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name in sorted(built.sha256):
            src = built.path(name)
            info = tarfile.TarInfo(prefix + name)
            info.size = src.stat().st_size
            info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = 0o755, 0, 0, 0, "root", "root"
            with open(src, "rb") as f:
                tar.addfile(info, f)
    return buf.getvalue()


def _sources(built: Built) -> str:
    return "".join(f"{sha}  {name}\n" for name, sha in sorted(built.sha256.items()))


def _write_tarball(built: Built, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(_tarball_bytes(built))
    tmp.replace(dest)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_sha256(path: Path) -> str:
    digest = _sha256(path)
    side = path.with_name(path.name + ".sha256")
    line = f"{digest}  {path.name}\n"
    if not side.exists() or side.read_text() != line:
        side.write_text(line)
    return digest
