"""spec schema: the JSON Schema of the cluster spec."""

from __future__ import annotations

import json

import click

from kpyops.spec import Cluster


@click.group("spec")
def command() -> None:
    """About the cluster spec."""


@command.command("schema")
def schema() -> None:
    """Print the JSON Schema of the cluster spec."""
    click.echo(json.dumps(Cluster.model_json_schema(by_alias=True), indent=2))
