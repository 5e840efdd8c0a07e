"""Build the kpyops wheel and fetch the proxy's dependency wheels, on the control machine.

Usage: wheelhouse.py PROJECT_DIR WHEELHOUSE PACKAGE...

Writes WHEELHOUSE/<hash of the source tree>/ holding kpyops-<version>-py3-none-any.whl
(reproducible: SOURCE_DATE_EPOCH is fixed, so an unchanged tree gives identical bytes) and
the pure-Python wheels of PACKAGE..., pinned to the versions installed next to this
interpreter (the versions kpyops was tested with). An existing folder is reused as is.
Prints JSON: {"dir", "requirements", "changed"}.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPRODUCIBLE_EPOCH = "315532800"  # 1980-01-01, the earliest time a zip file can hold
KEEP = 3  # wheelhouse folders kept (the newest); older source trees' are removed


def source_files(project: Path) -> list[Path]:
    files = [project / "pyproject.toml"]
    if (project / "README.md").exists():
        files.append(project / "README.md")
    files += sorted(
        p
        for p in (project / "kpyops").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".pyc")
    )
    return files


def tree_hash(project: Path, pins: list[str]) -> str:
    digest = hashlib.sha256()
    for path in source_files(project):
        digest.update(path.relative_to(project).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    digest.update("\n".join(pins).encode())
    return digest.hexdigest()[:16]


def pin(package: str) -> str:
    """``name==version`` as ``pip freeze`` prints it (lower case, dashes)."""
    name = package.lower().replace("_", "-")
    try:
        return f"{name}=={importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return name


def pip(*args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SOURCE_DATE_EPOCH": REPRODUCIBLE_EPOCH},
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"pip {args[0]} failed")


def build(project: Path, out: Path, pins: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="kpyops-wheel-") as tmp:
        src = Path(tmp) / "src"
        for path in source_files(project):
            dest = src / path.relative_to(project)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
        staging = Path(tmp) / "out"
        pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(staging), str(src))
        pip(
            "download", "--quiet", "--no-deps", "--only-binary=:all:",
            "--dest", str(staging), *pins,
        )  # fmt: skip
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(out))


def prune(wheelhouse: Path, keep: Path) -> None:
    """Remove all but the newest KEEP folders (never ``keep``)."""
    folders = sorted(
        (p for p in wheelhouse.iterdir() if p.is_dir() and p != keep),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in folders[KEEP - 1 :]:
        shutil.rmtree(old, ignore_errors=True)


def main() -> None:
    project, wheelhouse = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).expanduser()
    pins = sorted(pin(p) for p in sys.argv[3:])
    out = wheelhouse / tree_hash(project, pins)
    changed = not out.is_dir()
    if changed:
        build(project, out, pins)
        prune(wheelhouse, keep=out)
    (kpyops_wheel,) = out.glob("kpyops-*.whl")
    version = kpyops_wheel.name.split("-")[1]
    print(
        json.dumps(
            {"dir": str(out), "requirements": [f"kpyops=={version}", *pins], "changed": changed}
        )
    )


if __name__ == "__main__":
    main()
