"""The `kpyops` command: a click group; each verb lives in its own module."""

from __future__ import annotations

import sys

import click

from kpyops import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kpyops")
@click.option(
    "--state",
    envvar="KPYOPS_STATE",
    default=None,
    metavar="URL",
    help="State store: a folder (default ~/.kpyops) or s3://bucket/prefix. Env: KPYOPS_STATE.",
)
@click.option("-v", "--verbose", count=True, help="Show Ansible's own output (-vv: more).")
@click.pass_context
def cli(ctx: click.Context, state: str | None, verbose: int) -> None:
    """kpyops: production-grade Kubernetes clusters from one declarative spec."""
    ctx.obj = {"state": state, "verbose": verbose}


def _register() -> None:
    # Each module defines one click command or group named `command`.
    from kpyops.cli import commands

    for command in commands.all_commands():
        cli.add_command(command)


def main() -> None:
    _register()
    sys.exit(cli.main(standalone_mode=True))
