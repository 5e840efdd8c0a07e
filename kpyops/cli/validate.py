"""validate cluster: kops' gate. Is every node Ready, the control plane up, etcd healthy,
DNS answering and a Service reachable through the proxy?"""

from __future__ import annotations

import sys

import click

from kpyops import validate as lib
from kpyops.cli.names import CLUSTER_NAME, DURATION
from kpyops.cli.output import emit, fail, progress, say
from kpyops.kubeconfig import KubeconfigError
from kpyops.state import StateError, open_store


@click.group("validate")
def command() -> None:
    """Check that a cluster works."""


@command.command("cluster")
@click.argument("name", type=CLUSTER_NAME)
@click.option("--wait", type=DURATION, default="0s",
              help="Keep checking until the cluster is valid or this long has passed (e.g. 10m).")
@click.option("-o", "--output", "fmt", type=click.Choice(["table", "json", "yaml"]), default="table")
@click.pass_context
def validate_cluster(ctx: click.Context, name: str, wait, fmt: str) -> None:
    """Check cluster NAME through its API; exit 1 naming every failing item."""
    store = open_store(ctx.obj.get("state"))
    try:
        with lib.for_cluster(store, name) as (api, expected, etcd):
            progress(f"validating {name} through {api.client.host}")
            findings = lib.validate(api, expected, etcd, wait=wait.total_seconds(), progress=progress)
    except (StateError, KubeconfigError) as err:
        fail(str(err))
    failing = [f for f in findings if not f.ok]
    if fmt == "table":
        width = max(len(f.item) for f in findings)
        click.echo(f"{'ITEM':<{width}}  {'STATUS':<6}  DETAIL")
        for f in findings:
            click.echo(f"{f.item:<{width}}  {'ok' if f.ok else 'FAIL':<6}  {f.detail}")
    else:
        emit({"valid": not failing, "findings": [f.as_dict() for f in findings]}, fmt)
    if failing:
        say((f"cluster {name} is not valid:", "bold red"),
            f" {len(failing)} failing: " + ", ".join(f.item for f in failing))
        sys.exit(1)
    say((f"cluster {name} is valid", "bold green"), f" ({len(findings)} checks)")
