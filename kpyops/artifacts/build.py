"""Compile a component's programs from its Go module, once per version and inputs.

Results are cached outside the checkout, in ``<cache>/<component>/<version>/``: the
binaries and ``build.json`` (each binary's sha256, the Go version, and a fingerprint of
every input: go.mod, go.sum, our own Go files, tags and flags). A warm build finds a
matching build.json and returns in well under a second; Go's own build cache makes a
rebuild after a flag change cost only the link.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kpyops.artifacts.catalog import KUBERNETES, Component
from kpyops.artifacts.gomod import kubernetes_go_mod

CACHE_DIR = Path(os.environ.get("KPYOPS_ARTIFACTS_CACHE", Path.home() / ".cache" / "kpyops" / "artifacts"))
Progress = Callable[[str], None]


class BuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class Built:
    """A component built at one version: where its binaries are and what they hash to."""

    component: Component
    version: str
    folder: Path
    sha256: dict[str, str]  # program name -> sha256 of the binary
    seconds: float  # 0.0 when it came from the cache
    cached: bool

    def path(self, program: str) -> Path:
        return self.folder / program


def go_version() -> str:
    try:
        out = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        raise BuildError("Go is needed to build the components: install Go 1.26 (see README)") from err
    return out.stdout.strip()


def ldflags(component: Component, version: str) -> list[str]:
    major, minor = version.split(".")[:2]
    flags = ["-s", "-w"]
    for stamp in component.stamps:
        flags += ["-X", stamp.format(v=version, major=major, minor=minor)]
    return [" ".join([*flags, *component.extra_ldflags])]


def module_folder(component: Component, version: str | None, cache_dir: Path, progress: Progress) -> tuple[Path, str]:
    """The Go module to build in, and the version it pins.

    The committed folder for the pinned version; for another Kubernetes version, a module
    generated into the cache (go.mod from that release's own go.mod, then `go mod tidy`)."""
    folder = component.folder()
    pinned = component.version()
    if version is None or version == pinned:
        return folder, pinned
    if component is not KUBERNETES:
        raise BuildError(f"{component.name} is pinned at {pinned} in go/{component.name}/go.mod; "
                         "change it there to build another version")
    gen = cache_dir / "modules" / f"kubernetes-{version}"
    if not (gen / "go.sum").exists():
        progress(f"resolving k8s.io/kubernetes v{version} and its staging modules")
        gen.mkdir(parents=True, exist_ok=True)
        info = _go(["mod", "download", "-json", f"{KUBERNETES.module}@v{version}"], cwd=gen)
        upstream = Path(json.loads(info)["GoMod"]).read_text()
        (gen / "go.mod").write_text(kubernetes_go_mod(version, upstream))
        _go(["mod", "tidy"], cwd=gen)
    return gen, version


def fingerprint(component: Component, folder: Path, version: str, programs: list[str], go: str) -> str:
    h = hashlib.sha256()
    for name in ("go.mod", "go.sum", *sorted(p.name for p in folder.glob("*.go")), "VERSION"):
        f = folder / name
        if f.exists():
            h.update(name.encode() + b"\0" + f.read_bytes() + b"\0")
    h.update(json.dumps([version, programs, go, component.cgo, component.tags,
                         ldflags(component, version)]).encode())
    return h.hexdigest()


def build(
    component: Component,
    version: str | None = None,
    *,
    with_optional: bool = False,
    cache_dir: Path = CACHE_DIR,
    progress: Progress = lambda _m: None,
) -> Built:
    folder, version = module_folder(component, version, cache_dir, progress)
    programs = [p for p in component.programs if with_optional or p.name not in component.optional]
    names = [p.name for p in programs]
    go = go_version()
    key = fingerprint(component, folder, version, names, go)
    out = cache_dir / component.name / version
    record = out / "build.json"
    if record.exists():
        data = json.loads(record.read_text())
        if data.get("fingerprint") == key and all((out / n).exists() for n in names):
            return Built(component, version, out, data["sha256"], 0.0, cached=True)

    progress(f"building {component.name} {version}: {', '.join(names)} "
             f"(first build of a version: minutes; then cached in {out})")
    start = time.monotonic()
    out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = Path(tempfile.mkdtemp(prefix=f".{component.name}-{version}.", dir=out.parent))
    try:
        env = {**os.environ, "CGO_ENABLED": "1" if component.cgo else "0"}
        cmd = ["build", "-trimpath", "-v", "-o", str(tmp) + "/"]
        if component.tags:
            cmd += ["-tags", ",".join(component.tags)]
        cmd += ["-ldflags", *ldflags(component, version), *[p.package for p in programs]]
        _go_streaming(cmd, cwd=folder, env=env, progress=progress, label=component.name)
        for p in programs:
            if go_binary_name(p.package) != p.name:
                (tmp / go_binary_name(p.package)).rename(tmp / p.name)
        sha = {n: hashlib.sha256((tmp / n).read_bytes()).hexdigest() for n in names}
        seconds = round(time.monotonic() - start, 1)
        (tmp / "build.json").write_text(json.dumps(
            {"component": component.name, "version": version, "go": go, "fingerprint": key,
             "sha256": sha, "seconds": seconds}, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    progress(f"built {component.name} {version} in {seconds:.0f}s")
    return Built(component, version, out, sha, seconds, cached=False)


def go_binary_name(package: str) -> str:
    """The name `go build -o dir/` gives a main package: its last path element, or the one
    before a major-version suffix (go.etcd.io/etcd/server/v3 -> server)."""
    parts = package.split("/")
    if len(parts) > 1 and re.fullmatch(r"v[0-9]+", parts[-1]):
        return parts[-2]
    return parts[-1]


def _go(args: list[str], *, cwd: Path) -> str:
    proc = subprocess.run(["go", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"go {' '.join(args)} (in {cwd}):\n{proc.stderr.strip()[-4000:]}")
    return proc.stdout


def _go_streaming(args: list[str], *, cwd: Path, env: dict, progress: Progress, label: str) -> None:
    """Run go with -v, reporting how many packages are done every 30 s; raise with its tail."""
    proc = subprocess.Popen(["go", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    last = time.monotonic()
    assert proc.stdout is not None
    for packages, line in enumerate(proc.stdout, start=1):
        tail = [*tail[-40:], line.rstrip()]
        if time.monotonic() - last > 30:
            progress(f"{label}: {packages} packages compiled")
            last = time.monotonic()
    if proc.wait() != 0:
        raise BuildError(f"go {' '.join(args[:1])} failed for {label} (in {cwd}):\n" + "\n".join(tail))

