"""artifacts build: compile the cluster components from pinned Go modules."""

from __future__ import annotations

import click

from kpyops.artifacts import COMPONENTS, FILES_DIR, BuildError, build, publish
from kpyops.cli.output import emit, fail, progress


@click.group("artifacts")
def command() -> None:
    """Components built from Go modules: build, cache, files repository."""


@command.command("build")
@click.option("--kubernetes-version", metavar="V", help="Kubernetes release (default: go/kubernetes/go.mod's).")
@click.option("--only", multiple=True, type=click.Choice(sorted(COMPONENTS)), help="Build only these (repeatable).")
@click.option("--reference", is_flag=True, help="Also build upstream's kube-proxy (for comparison tests).")
@click.option("-o", "--output", type=click.Choice(["table", "json", "yaml"]), default="table")
def build_command(kubernetes_version: str | None, only: tuple[str, ...], reference: bool, output: str) -> None:
    """Build (or find in the cache) every component and lay it out as a files repository."""
    rows = []
    for name, component in COMPONENTS.items():
        if only and name not in only:
            continue
        version = kubernetes_version.removeprefix("v") if name == "kubernetes" and kubernetes_version else None
        try:
            built = build(component, version, with_optional=reference, progress=progress)
        except BuildError as err:
            fail(str(err))
        files = publish(built)
        rows.append({
            "component": name,
            "version": built.version,
            "seconds": built.seconds,
            "cached": built.cached,
            "binaries": built.sha256,
            "files": files,
        })
    if output != "table":
        emit(rows, output)
        return
    for row in rows:
        state = "cached" if row["cached"] else f"built in {row['seconds']:.0f}s"
        click.echo(f"{row['component']:<12} {row['version']:<10} {state}")
        for program, sha in row["binaries"].items():
            click.echo(f"  {program:<26} sha256:{sha}")
    click.echo(f"files repository: {FILES_DIR}")
