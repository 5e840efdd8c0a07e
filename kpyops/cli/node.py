"""delete node: take one worker node out of a cluster."""

from __future__ import annotations

import click

from kpyops import day2
from kpyops.cli.names import CLUSTER_NAME, NODE_NAME
from kpyops.cli.output import ansible_progress, fail, progress, stderr
from kpyops.clouds.base import CloudError
from kpyops.run.ansible import PlaybookFailed
from kpyops.run.changes import format_host_changes
from kpyops.spec import SpecError
from kpyops.spec.hosts import NotRemovable
from kpyops.state import ClusterNotFound, LockHeld, StateError, open_store


@click.command("node")
@click.argument("name", type=CLUSTER_NAME)
@click.argument("node", type=NODE_NAME)
@click.option("--yes", is_flag=True, help="Remove the node (without it: what the removal would do).")
@click.option("--no-reset", is_flag=True,
              help="Leave the node's host alone (it is dead or gone): drain, delete and forget only.")
@click.pass_context
def delete_node(ctx: click.Context, name: str, node: str, yes: bool, no_reset: bool) -> None:
    """Take worker NODE out of cluster NAME (remove-node.yml): cordon and drain it
    (PodDisruptionBudgets honoured, with a timeout), delete its Node object, reset its host
    (where kpyops did not make the machine), drop it from the spec and the inventory, delete
    its machine (where kpyops made it), and write the remaining hosts into every /etc/hosts
    and their routes to the pod ranges left (playbooks/neighbours.yml)."""
    store = open_store(ctx.obj.get("state"))
    verbose = ctx.obj.get("verbose", 0)
    try:
        with ansible_progress(verbose) as callbacks:
            removal = day2.remove_node(store, name, node, progress, check=not yes,
                                            reset=not no_reset, verbosity=verbose, **callbacks)
    except PlaybookFailed as err:
        for line in err.tail:
            stderr.print(line, markup=False, highlight=False)
        fail(f"{err}: the node may be cordoned; nothing was dropped from the spec")
    except (ClusterNotFound, NotRemovable, SpecError, LockHeld, StateError, CloudError) as err:
        fail(str(err))
    click.echo("machines:" if removal.cloud else "machines: none deleted (the spec lists this host)")
    for ch in removal.cloud:
        click.echo(str(ch))
    lines = format_host_changes(removal.hosts, diffs=not yes)
    if lines:
        click.echo("hosts:")
        click.echo("\n".join(lines))
    host_work = "reset" if removal.reset else "left alone"
    if not yes:
        progress(f"the spec would lose {node}; its host would be {host_work}; "
                 f"run again with --yes to remove it")
        return
    progress(f"{node} removed from {name} in {removal.result.seconds:.0f}s "
             f"(its host {host_work})")
