"""upgrade cluster: a new Kubernetes version, control planes first, nodes drained in batches."""

from __future__ import annotations

import click

from kpyops import day2
from kpyops.cli.names import CLUSTER_NAME, DURATION
from kpyops.cli.output import ansible_progress, fail, progress, spec_error, stderr
from kpyops.clouds.base import CloudError
from kpyops.kubeconfig import KubeconfigError
from kpyops.run.ansible import PlaybookFailed
from kpyops.spec import SpecError
from kpyops.spec.skew import RULES
from kpyops.state import ClusterNotFound, LockHeld, StateError, open_store


@click.group("upgrade")
def command() -> None:
    """Upgrade a resource."""


@command.command("cluster")
@click.argument("name", type=CLUSTER_NAME)
@click.option("--kubernetes-version", "version", required=True, help="The version to go to.")
@click.option("--yes", is_flag=True, help="Do it (without it: the plan).")
@click.option("--max-unavailable", type=click.IntRange(min=1), default=1, show_default=True,
              help="Nodes drained at once (control planes: always one).")
@click.option("--validation-timeout", type=DURATION, default="10m", show_default=True,
              help="How long the cluster may take to validate after each batch.")
@click.pass_context
def upgrade_cluster(ctx: click.Context, name: str, version: str, yes: bool, max_unavailable: int,
                    validation_timeout) -> None:
    """Upgrade cluster NAME to Kubernetes VERSION: refused when it skips a minor release or goes
    down; with --yes an etcd snapshot first, then the control planes one at a time and the
    nodes in batches, each drained, converged, uncordoned and validated. Run it again after a
    stop: it goes on where it stopped."""
    store = open_store(ctx.obj.get("state"))
    verbose = ctx.obj.get("verbose", 0)
    try:
        up = day2.upgrade_plan(store, name, version)
        click.echo(f"Kubernetes {up.old} -> {up.new}" + (" (resuming)" if up.old == up.new else ""))
        for host, programs in up.components.items():
            click.echo(f"  ~ host {host}: {', '.join(programs)} -> {up.new}")
        click.echo("rules kept:")
        click.echo("\n".join(f"  - {rule}" for rule in RULES))
        for ch in up.update.cloud:
            click.echo(str(ch))
        if up.update.inventory:
            click.echo("inventory files changed: " + ", ".join(up.update.inventory))
        if not yes:
            progress(f"run again with --yes to upgrade {name}")
            return
        with ansible_progress(verbose) as callbacks:
            result = day2.upgrade(store, up, progress, max_unavailable=max_unavailable,
                                  validate_timeout=validation_timeout.total_seconds(),
                                  verbosity=verbose, **callbacks)
    except SpecError as err:
        spec_error(err)
    except PlaybookFailed as err:
        for line in err.tail:
            stderr.print(line, markup=False, highlight=False)
        fail(f"{err}: run the same command again to go on")
    except (day2.RollingUpdateStopped, ClusterNotFound, LockHeld, StateError, CloudError,
            KubeconfigError) as err:
        fail(f"{err}; run the same command again to go on")
    progress(f"{name} runs Kubernetes {up.new} ({result.seconds:.0f}s of Ansible)")
