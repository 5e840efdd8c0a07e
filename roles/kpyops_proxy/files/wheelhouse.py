"""Build the kpyops wheel and fetch the proxy's dependency wheels, on the control machine.

Usage: wheelhouse.py PROJECT_DIR WHEELHOUSE [FROM_SYSTEM...]

The proxy's requirements are PROJECT_DIR/pyproject.toml's `proxy` extra (the one list of what
`kpyops proxy` imports) and, recursively, their own requirements, as installed next to this
interpreter; FROM_SYSTEM names distributions the node gets from its distribution's packages
instead (not fetched, nor their requirements).

Writes WHEELHOUSE/<hash of the source tree>/ holding kpyops-<version>-py3-none-any.whl
(reproducible: SOURCE_DATE_EPOCH is fixed, so an unchanged tree gives identical bytes) and
the pure-Python wheels of those requirements, pinned to the versions installed next to this
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
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

REPRODUCIBLE_EPOCH = "315532800"  # 1980-01-01, the earliest time a zip file can hold
KEEP = 3  # wheelhouse folders kept (the newest); older source trees' are removed
EXTRA = "proxy"  # pyproject.toml's optional-dependency extra listing the proxy's requirements


def normalize(name: str) -> str:
    """A distribution name as ``pip freeze`` prints it (lower case, dashes)."""
    return name.lower().replace("_", "-").replace(".", "-")


def proxy_requirements(project: Path) -> list[Requirement]:
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    extras = pyproject["project"].get("optional-dependencies", {})
    if EXTRA not in extras:
        raise SystemExit(f"{project}/pyproject.toml has no optional-dependencies.{EXTRA}")
    return [Requirement(r) for r in extras[EXTRA]]


def closure(requirements: list[Requirement], skip: set[str] = frozenset()) -> list[str]:
    """The distributions ``requirements`` need, recursively, as installed here (sorted names);
    those in ``skip`` and their own requirements are left out."""
    skip = {normalize(s) for s in skip}
    seen: set[str] = set()
    expanded: set[tuple[str, str]] = set()  # (distribution, extra) whose requirements are queued
    todo = [(r, "") for r in requirements]  # (requirement, the extra that asked for it)
    while todo:
        req, extra = todo.pop()
        name = normalize(req.name)
        if (req.marker and not req.marker.evaluate({"extra": extra})) or name in skip:
            continue
        try:
            dist = importlib.metadata.distribution(req.name)
        except importlib.metadata.PackageNotFoundError:
            raise SystemExit(f"{req.name} (needed by the proxy) is not installed here") from None
        if not req.specifier.contains(dist.version, prereleases=True):
            raise SystemExit(f"the proxy needs {req}, {dist.version} is installed here")
        seen.add(name)
        for wanted in ("", *sorted(req.extras)):
            if (name, wanted) not in expanded:
                expanded.add((name, wanted))
                todo += [(Requirement(r), wanted) for r in dist.requires or []]
    return sorted(seen)


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
    return f"{normalize(package)}=={importlib.metadata.version(package)}"


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
    pins = [pin(p) for p in closure(proxy_requirements(project), set(sys.argv[3:]))]
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
