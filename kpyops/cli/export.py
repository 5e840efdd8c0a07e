"""export kubeconfig: a kubeconfig for this workstation, with a short-lived admin
certificate (kops' `export kubeconfig --admin`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from kpyops import kubeconfig as kc
from kpyops.cli.names import CLUSTER_NAME, DURATION
from kpyops.cli.output import fail, progress
from kpyops.clouds import get_cloud
from kpyops.lifecycle import load_cluster
from kpyops.pki.renew import pki_dir
from kpyops.state import StateError, open_store


@click.group("export")
def command() -> None:
    """Write files for use outside kpyops."""


@command.command("kubeconfig")
@click.argument("name", type=CLUSTER_NAME)
@click.option("--admin", "ttl", type=DURATION, default="18h", show_default=True,
              help="How long the admin client certificate is valid.")
@click.option("--kubeconfig", "path", type=click.Path(dir_okay=False, path_type=Path),
              help="The file to merge into [first of $KUBECONFIG, else ~/.kube/config].")
@click.pass_context
def export_kubeconfig(ctx: click.Context, name: str, ttl: dt.timedelta, path: Path | None) -> None:
    """Merge cluster NAME's cluster, user and context (all named NAME) into a kubeconfig
    and make it the current context; other entries are kept."""
    store = open_store(ctx.obj.get("state"))
    path = path or kc.default_path()
    try:
        cluster = load_cluster(store, name)
        server = kc.api_server_url(cluster, get_cloud(cluster.spec.cloud, store).api_endpoint(cluster))
        pki = pki_dir(store, name)
        cert, key = kc.admin_credential(pki, ttl)
        kc.write_merged(path, kc.kubeconfig(name, server, (pki / "ca.crt").read_bytes(), cert, key))
    except (StateError, kc.KubeconfigError, ValueError) as err:
        fail(str(err))
    until = dt.datetime.now(dt.UTC) + ttl
    progress(f"kubeconfig for {name} ({server}) written to {path}: context {name}, "
             f"admin until {until:%Y-%m-%d %H:%M} UTC")
