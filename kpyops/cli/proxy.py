"""`kpyops proxy`: the per-node service proxy daemon (kube-proxy's job, in Python)."""

from __future__ import annotations

import logging
import signal
import sys

import click


@click.command("proxy")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="KubeProxyConfiguration file (kubeproxy.config.k8s.io/v1alpha1).",
)
@click.option("--cleanup", is_flag=True, help="Remove every rule the proxy creates, then exit.")
@click.option(
    "--services-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Read Services and EndpointSlices from YAML files here instead of the API.",
)
@click.option(
    "--poll-interval", type=float, default=0.5, show_default=True, help="With --services-dir."
)
@click.option(
    "--iptables-backend",
    type=click.Choice(["system", "nft", "legacy"]),
    default="system",
    show_default=True,
    help="Which iptables to drive: the system's default, iptables-nft or iptables-legacy.",
)
@click.option(
    "--node-zone",
    default=None,
    help="This node's topology zone (for topology hints); read from the Node object if unset "
    "(API source only).",
)
@click.option(
    "--node-ip",
    "node_ips",
    multiple=True,
    help="This node's primary IP (repeat per family), for nodePortAddresses 'primary'; read "
    "from the Node object if unset (API source only).",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    default="/var/lib/kpyops/proxy",
    show_default=True,
    help="Where the proxy remembers what it changed on the node (route_localnet).",
)
@click.option("--log-level", default="info", show_default=True)
def command(
    config_path: str,
    cleanup: bool,
    services_dir: str | None,
    poll_interval: float,
    iptables_backend: str,
    node_zone: str | None,
    node_ips: tuple[str, ...],
    state_dir: str,
    log_level: str,
) -> None:
    """Run the service proxy on this node."""
    from pathlib import Path

    from kpyops.proxy.config import ConfigError, load_config
    from kpyops.proxy.daemon import ProxyDaemon, cleanup_all
    from kpyops.proxy.node import NodeInfo

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_config(config_path)
    except ConfigError as err:
        raise click.ClickException(str(err)) from err
    if cleanup:
        cleanup_all(config, iptables_backend, Path(state_dir))
        click.echo("proxy rules removed")
        return
    node = None
    if node_zone is not None or node_ips:
        node = NodeInfo(node_zone or "", tuple(node_ips))
    elif services_dir:
        node = NodeInfo()
    try:
        daemon = ProxyDaemon(
            config,
            source_dir=services_dir,
            poll_interval=poll_interval,
            iptables_backend=iptables_backend,
            node=node,
            state_dir=Path(state_dir),
        )
    except ConfigError as err:
        raise click.ClickException(str(err)) from err
    except Exception as err:
        from kpyops.proxy.ipvs import IpvsUnavailable
        from kpyops.proxy.sources.directory import SourceFolderMissing

        if isinstance(err, IpvsUnavailable | SourceFolderMissing):
            raise click.ClickException(str(err)) from err
        raise
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: daemon.stop())
    daemon.run()
    sys.exit(daemon.exit_code)  # 1: the Node changed under us; systemd starts us again
