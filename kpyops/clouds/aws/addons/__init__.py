"""Add-on manifests a cluster on AWS gets: the EBS CSI default StorageClass."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent


def addon_manifests() -> dict[str, str]:
    """File name -> manifest text, for every add-on of an AWS cluster."""
    return {p.name: p.read_text() for p in sorted(HERE.glob("*.yaml"))}
