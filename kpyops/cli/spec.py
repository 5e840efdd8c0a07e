"""spec schema | render: the spec's JSON Schema, and group_vars without a state store."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kpyops.cli.output import progress, spec_error
from kpyops.render.inventory import render_inventory
from kpyops.spec import Cluster, SpecError, complete, loads


@click.group("spec")
def command() -> None:
    """About the cluster spec."""


@command.command("schema")
def schema() -> None:
    """Print the JSON Schema of the cluster spec."""
    click.echo(json.dumps(Cluster.model_json_schema(by_alias=True), indent=2))


@command.command("render")
@click.option("-f", "--file", type=click.File("rb"), required=True, help="Cluster spec (YAML).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Inventory folder.")
@click.option("--with-hosts/--no-hosts", default=False, help="Also write hosts.yml.")
def render(file, out, with_hosts) -> None:
    """Render an inventory's group_vars (and hosts.yml) from a spec, without a state store."""
    try:
        cluster = complete(loads(file))
    except SpecError as err:
        spec_error(err)
    for rel, text in render_inventory(cluster).items():
        if rel == "hosts.yml" and not with_hosts:
            continue
        path = Path(out) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        progress(f"wrote {path}")
