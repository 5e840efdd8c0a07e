"""certs check / renew: the cluster's certificates, their expiry, and renewal."""

from __future__ import annotations

import sys

import click

from kpyops.cli.names import CLUSTER_NAME
from kpyops.cli.output import EXIT_SPEC, ansible_progress, emit, fail, progress, say
from kpyops.pki import renew as pki_renew
from kpyops.run.ansible import PlaybookFailed
from kpyops.state import ClusterNotFound, LockHeld, open_store


@click.group("certs")
def command() -> None:
    """The cluster's certificates: expiry, and renewal."""


@command.command("check")
@click.argument("name", type=CLUSTER_NAME)
@click.option("--days", default=pki_renew.WARN_DAYS, show_default=True, type=float,
              help="Exit non-zero when a certificate has fewer days left.")
@click.option("-o", "--output", "fmt", type=click.Choice(["table", "json", "yaml"]), default="table")
@click.pass_context
def check(ctx: click.Context, name: str, days: float, fmt: str) -> None:
    """List every certificate of cluster NAME with its expiry; exit 1 if one expires soon."""
    try:
        certs = pki_renew.certificates(open_store(ctx.obj.get("state")), name)
    except ClusterNotFound as err:
        fail(str(err))
    soon = pki_renew.expiring(certs, days)
    if fmt == "table":
        width = max(len(c.name) for c in certs)
        click.echo(f"{'CERTIFICATE':<{width}}  {'EXPIRES (UTC)':<20}  {'DAYS LEFT':>9}  KIND")
        for c in certs:
            mark = "  <- expires soon" if c in soon else ""
            click.echo(f"{c.name:<{width}}  {c.not_after:%Y-%m-%d %H:%M:%S}  {c.days_left:>9.1f}  "
                       f"{'CA' if c.is_ca else 'leaf'}{mark}")
    else:
        emit([{"name": c.name, "subject": c.subject, "issuer": c.issuer, "ca": c.is_ca,
               "notAfter": c.not_after.isoformat(), "daysLeft": round(c.days_left, 2),
               "sha256": c.fingerprint, "sans": list(c.sans)} for c in certs], fmt)
    if soon:
        say((f"{len(soon)} certificate(s) with fewer than {days:g} days left:", "bold red"),
            " " + ", ".join(c.name for c in soon) + f" (run `kpyops certs renew {name}`)")
        sys.exit(1)


@command.command("renew")
@click.argument("name", type=CLUSTER_NAME)
@click.argument("certificates", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Renew every leaf certificate.")
@click.option("--days", default=pki_renew.WARN_DAYS, show_default=True, type=float,
              help="Without names or --all: renew the certificates with fewer days left.")
@click.pass_context
def renew(ctx: click.Context, name: str, certificates: tuple[str, ...], every: bool, days: float) -> None:
    """Renew certificates of cluster NAME (named ones, --all, or those expiring) and roll them out."""
    store = open_store(ctx.obj.get("state"))
    verbose = ctx.obj.get("verbose", 0)
    try:
        leaves = pki_renew.to_renew(pki_renew.certificates(store, name), certificates, every, days)
    except ClusterNotFound as err:
        fail(str(err))
    except KeyError as err:  # a certificate name that is not one of the cluster's leaves
        fail(str(err.args[0]) if err.args else str(err), EXIT_SPEC)
    progress(f"renewing {len(leaves)} certificate(s)" + (f": {', '.join(leaves)}" if leaves else
             " (none forced; stale ones are renewed anyway)"))
    try:
        with ansible_progress(verbose) as callbacks:
            results = pki_renew.renew(store, name, leaves, **callbacks)
    except PlaybookFailed as err:
        for line in err.tail:
            say(line)
        fail(str(err))
    except LockHeld as err:
        fail(str(err))
    progress(f"done in {sum(r.seconds for r in results):.0f}s")
