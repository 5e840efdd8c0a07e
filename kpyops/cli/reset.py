"""reset host: take one host of a cluster back to before the install."""

from __future__ import annotations

import click

from kpyops import lifecycle
from kpyops.cli.names import CLUSTER_NAME, NODE_NAME
from kpyops.cli.output import ansible_progress, fail, progress, stderr
from kpyops.run.ansible import PlaybookFailed
from kpyops.run.changes import format_host_changes
from kpyops.state import ClusterNotFound, LockHeld, StateError, open_store


@click.group("reset")
def command() -> None:
    """Take hosts back to before the install."""


@command.command("host")
@click.argument("name", type=CLUSTER_NAME)
@click.argument("host", type=NODE_NAME)
@click.option("--yes", is_flag=True, help="Reset the host (without it: what the reset would remove).")
@click.pass_context
def reset_host(ctx: click.Context, name: str, host: str, yes: bool) -> None:
    """Stop the cluster's services on HOST of cluster NAME and remove its files, rules, pod
    network and etcd data (reset.yml). Debian packages and etcd snapshots on the host stay;
    the cluster's API is not touched: the Node object (and an etcd member) remain until the
    host is converged again or removed from the cluster."""
    store = open_store(ctx.obj.get("state"))
    verbose = ctx.obj.get("verbose", 0)
    try:
        with ansible_progress(verbose) as callbacks:
            result, changes = lifecycle.reset_host(store, name, host, check=not yes,
                                                   verbosity=verbose, **callbacks)
    except PlaybookFailed as err:
        for line in err.tail:
            stderr.print(line, markup=False, highlight=False)
        fail(str(err))
    except (ClusterNotFound, lifecycle.UnknownHost, LockHeld, StateError) as err:
        fail(str(err))
    lines = format_host_changes({host: changes}, diffs=False)
    if not yes:
        click.echo(f"reset.yml --check on {host} (commands that stop processes, unmount, and "
                   "remove rules and devices are not previewed):")
        click.echo("\n".join(lines) if lines else f"  nothing of the cluster's found on {host}")
        progress(f"run again with --yes to reset {host}")
        return
    if lines:
        click.echo("\n".join(lines))
    progress(f"{host} reset in {result.seconds:.0f}s "
             f"(changed={result.recap.get(host, {}).get('changed', 0)}); "
             f"`kpyops update cluster {name} --yes` installs it again")
