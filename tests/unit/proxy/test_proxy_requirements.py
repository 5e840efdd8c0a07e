"""What a node installs for the proxy (pyproject.toml's `proxy` extra, resolved by the
kpyops_proxy role's wheelhouse.py) is what the proxy imports: no more, no less."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ROLE = ROOT / "roles" / "kpyops_proxy"
# What the node's launcher (templates/kpyops-proxy.j2) imports, and the proxy's package.
ENTRY = "kpyops.cli.proxy"


def load_wheelhouse():
    spec = importlib.util.spec_from_file_location("wheelhouse", ROLE / "files" / "wheelhouse.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wheelhouse = load_wheelhouse()


def debian_provided() -> set[str]:
    import yaml

    return set(
        yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())["kpyops_proxy_debian_python"]
    )


def module_file(name: str) -> Path | None:
    base = ROOT / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def proxy_imports() -> tuple[set[str], set[str]]:
    """(kpyops modules reachable from the launcher and kpyops.proxy, third-party top-level
    names they import), counting imports inside functions too."""
    todo = [ENTRY] + [
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "kpyops" / "proxy").rglob("*.py")
    ]
    modules: set[str] = set()
    third_party: set[str] = set()
    while todo:
        name = todo.pop()
        path = module_file(name)
        if name in modules or path is None:
            continue
        modules.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run first
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}: relative import"
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                top = target.split(".")[0]
                if top == "kpyops":
                    todo.append(target)
                elif top != "__future__" and top not in sys.stdlib_module_names:
                    third_party.add(top)
    return modules, third_party


def extra_names() -> set[str]:
    return {wheelhouse.normalize(r.name) for r in wheelhouse.proxy_requirements(ROOT)}


def test_the_proxy_extra_names_exactly_the_distributions_the_proxy_imports():
    modules, third_party = proxy_imports()
    assert "kpyops.proxy.sources.api" in modules and "kpyops.cli.proxy" in modules
    distributions = importlib.metadata.packages_distributions()
    imported = set()
    for top in third_party:
        assert top in distributions, (
            f"the proxy imports {top}, which no installed distribution provides"
        )
        imported |= {wheelhouse.normalize(d) for d in distributions[top]}
    assert imported == extra_names(), (
        "pyproject.toml's optional-dependencies.proxy must list what the proxy imports: "
        f"missing {sorted(imported - extra_names())}, unused {sorted(extra_names() - imported)}"
    )


def test_every_proxy_requirement_is_also_a_kpyops_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dependencies = {
        wheelhouse.normalize(r.split(">")[0].split("=")[0].split(";")[0].strip())
        for r in project["dependencies"]
    }
    assert extra_names() <= dependencies, sorted(extra_names() - dependencies)


def test_the_debian_provided_distributions_are_proxy_requirements():
    assert debian_provided() <= extra_names()


@pytest.fixture(scope="module")
def node_site(tmp_path_factory) -> Path:
    """A folder holding only kpyops and what a node gets: the wheelhouse's requirements and
    the Debian-provided distributions (here, the control machine's copies)."""
    site = tmp_path_factory.mktemp("node-site")
    (site / "kpyops").symlink_to(ROOT / "kpyops")
    names = wheelhouse.closure(wheelhouse.proxy_requirements(ROOT), debian_provided())
    for name in names + sorted(debian_provided()):
        dist = importlib.metadata.distribution(name)
        tops = {f.parts[0] for f in dist.files if f.parts[0] not in ("..", "__pycache__")}
        for top in tops:
            source = Path(dist.locate_file(top))
            if source.exists() and not (site / top).exists():
                (site / top).symlink_to(source)
    return site


def test_every_proxy_module_imports_with_only_what_a_node_installs(node_site, tmp_path):
    kubeconfig = tmp_path / "proxy.kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    script = textwrap.dedent(
        f"""
        import importlib, pkgutil, sys
        sys.path[:] = [p for p in sys.path if "-packages" not in p] + [{str(node_site)!r}]
        for absent in ("kubernetes", "pydantic", "requests", "rich"):
            try:
                importlib.import_module(absent)
            except ImportError:
                continue
            raise SystemExit(f"{{absent}} is importable: the test's path is not a node's")
        import kpyops.proxy
        names = ["{ENTRY}"] + [m.name for m in pkgutil.walk_packages(kpyops.proxy.__path__, "kpyops.proxy.")]
        for name in names:
            importlib.import_module(name)
        from kpyops.proxy.sources.api import ApiClient
        client = ApiClient.from_kubeconfig({str(kubeconfig)!r})
        assert client.host == "https://127.0.0.1:6443", client.host
        from kpyops.cli.proxy import command
        try:
            command(["--help"], prog_name="kpyops proxy")
        except SystemExit as done:
            assert done.code == 0, done.code
        print(len(names), "modules")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("modules")
