"""state unlock: break a lock that a run left behind in a remote store."""

from __future__ import annotations

import click

from kpyops.cli.names import CLUSTER_NAME
from kpyops.cli.output import fail, progress
from kpyops.state import StateError, open_store


@click.group("state")
def command() -> None:
    """The state store itself."""


@command.command("unlock")
@click.argument("name", type=CLUSTER_NAME)
@click.option("--holder", required=True,
              help="HOST/PID of the run that holds the lock, as the 'is locked by' error names it.")
@click.pass_context
def unlock(ctx: click.Context, name: str, holder: str) -> None:
    """Remove cluster NAME's lock if HOLDER still holds it (a run that is gone)."""
    store = open_store(ctx.obj.get("state"))
    try:
        said = store.break_lock(name, holder)
    except StateError as err:
        fail(str(err))
    progress(f"lock of cluster {name} removed (it was held by {said})")
