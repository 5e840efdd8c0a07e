"""image: the local test-host image (built with debootstrap on first use)."""

from __future__ import annotations

import click

from kpyops.cli.output import progress
from kpyops.clouds.local.image import ensure_image
from kpyops.clouds.local.podman import Podman


@click.command("image")
def command() -> None:
    """Print the local test-host image reference, building it if needed."""
    click.echo(ensure_image(Podman(), log=progress))
