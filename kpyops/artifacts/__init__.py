"""Artifacts: the upstream components a cluster runs, built from pinned Go modules.

This stage sits before the hosts: ``catalog`` says what exists and where each version is
pinned, ``build`` compiles and caches, ``files`` lays the results out as a files
repository, ``images`` builds OCI images and pushes them into a registry. The clouds
consume artifacts; artifacts know nothing of clouds.
"""

from kpyops.artifacts.build import CACHE_DIR, BuildError, Built, build
from kpyops.artifacts.catalog import COMPONENTS, Component
from kpyops.artifacts.files import FILES_DIR, publish

__all__ = [
    "CACHE_DIR",
    "COMPONENTS",
    "FILES_DIR",
    "BuildError",
    "Built",
    "Component",
    "build",
    "publish",
]
