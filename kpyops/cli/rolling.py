"""rolling-update cluster: converge the hosts that need it, batch by batch, drained, with the
cluster validated in between (kops' rolling-update)."""

from __future__ import annotations

import click

from kpyops import day2
from kpyops.cli.names import CLUSTER_NAME, DURATION
from kpyops.cli.output import ansible_progress, fail, progress, stderr
from kpyops.clouds.base import CloudError
from kpyops.kubeconfig import KubeconfigError
from kpyops.run.ansible import PlaybookFailed
from kpyops.run.changes import format_host_changes
from kpyops.spec import SpecError
from kpyops.state import ClusterNotFound, LockHeld, StateError, open_store


@click.group("rolling-update")
def command() -> None:
    """Converge hosts batch by batch, drained, validating in between."""


@command.command("cluster")
@click.argument("name", type=CLUSTER_NAME)
@click.option("--yes", is_flag=True, help="Do it (without it: which hosts, in which batches, and why).")
@click.option("--max-unavailable", type=click.IntRange(min=1), default=1, show_default=True,
              help="Nodes drained at once (control planes: always one).")
@click.option("--validation-timeout", type=DURATION, default="10m", show_default=True,
              help="How long the cluster may take to validate after each batch.")
@click.option("--force", is_flag=True, help="Every host, even those with nothing to change.")
@click.pass_context
def rolling_update_cluster(ctx: click.Context, name: str, yes: bool, max_unavailable: int,
                           validation_timeout, force: bool) -> None:
    """Apply cluster NAME's stored spec host by host: the hosts whose check run is not empty
    (control planes first, one at a time; then nodes, --max-unavailable at a time) are
    cordoned and drained, converged (cluster.yml) and uncordoned, and the cluster must
    validate before the next batch. Store a new spec first with
    `kpyops update cluster NAME -f FILE --yes --target cloud`. A re-run after a stop goes on
    with the hosts that still need it."""
    store = open_store(ctx.obj.get("state"))
    verbose = ctx.obj.get("verbose", 0)
    try:
        with ansible_progress(verbose) as callbacks:
            plan = day2.rolling_plan(store, name, max_unavailable=max_unavailable,
                                          force=force, verbosity=verbose, **callbacks)
            lines = format_host_changes(plan.check.changed, diffs=not yes)
            if lines:
                click.echo("hosts (cluster.yml --check --diff):")
                click.echo("\n".join(lines))
            if not plan.batches:
                progress(f"no host of {name} needs a rolling update")
                return
            for i, batch in enumerate(plan.batches, 1):
                click.echo(f"  batch {i}: {', '.join(batch)}")
            if not yes:
                progress(f"{sum(map(len, plan.batches))} host(s) in {len(plan.batches)} batch(es); "
                         "run again with --yes to drain, converge and validate them in turn")
                return
            result = day2.rolling_update(store, name, plan, progress,
                                              validate_timeout=validation_timeout.total_seconds(),
                                              verbosity=verbose, **callbacks)
    except PlaybookFailed as err:
        for line in err.tail:
            stderr.print(line, markup=False, highlight=False)
        fail(f"{err}: the batch's hosts may still be cordoned; a re-run goes on from there")
    except (day2.RollingUpdateStopped, ClusterNotFound, SpecError, LockHeld, StateError,
            CloudError, KubeconfigError) as err:
        fail(str(err))
    progress(f"rolling update of {name} done in {result.seconds:.0f}s: "
             + ", ".join(f"{h} changed={r.get('changed', 0)}" for h, r in result.recap.items()))
