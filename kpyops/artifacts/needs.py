"""What a completed spec needs built: each component at the version the spec names.

Only artifacts the spec leaves to the files repository (no URL of their own) are built;
images are needed when the spec pulls registry.k8s.io through a mirror we fill.
"""

from __future__ import annotations

from pathlib import Path

from kpyops.artifacts.build import CACHE_DIR, Built, Progress, build
from kpyops.artifacts.catalog import (
    CNI,
    CONTAINERD,
    COREDNS,
    ETCD,
    KUBERNETES,
    PAUSE,
    PROBE,
    RUNC,
    Component,
)
from kpyops.artifacts.files import FILES_DIR, publish
from kpyops.artifacts.images import component_images, in_registry
from kpyops.spec.model import Cluster


def components_for(cluster: Cluster) -> list[tuple[Component, str]]:
    s = cluster.spec
    items = s.artifacts.items

    def from_repository(*names: str) -> bool:
        return any(n in items and items[n].url is None for n in names)

    wanted: list[tuple[Component, str]] = []
    k8s = ("kubelet", "kubectl", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
    if from_repository(*k8s):
        wanted.append((KUBERNETES, s.kubernetes_version))
    for component, item in ((ETCD, "etcd"), (CONTAINERD, "containerd"), (RUNC, "runc"), (CNI, "cni-plugins")):
        if from_repository(item):
            wanted.append((component, items[item].version))
    if s.container_runtime.registry_mirrors:
        wanted.append((PAUSE, s.container_runtime.pause_image.rsplit(":", 1)[-1]))
        wanted.append((COREDNS, s.dns.version))
        wanted.append((PROBE, PROBE.version()))
    return wanted


def missing_files(cluster: Cluster, files_dir: Path = FILES_DIR) -> list[str]:
    """Files the spec expects in the files repository that are not there (fast: no build)."""
    out = []
    for component, version in components_for(cluster):
        if component.layout == "binaries":
            names = [p.name for p in component.programs if p.name not in component.optional]
            paths = [f"{n}/{version}/{n}" for n in names]
        elif component.layout in ("file", "tarball"):
            paths = [f"{component.name}/{version}/{component.file_name(version)}"]
        else:
            continue
        out += [p for p in paths if not (files_dir / p).exists() or not (files_dir / f"{p}.sha256").exists()]
    return out


def missing_images(cluster: Cluster, registry: str) -> list[str]:
    """Images the spec pulls through the registry (host:port) that it does not serve yet."""
    return [f"{i.path}:{i.tag}" for component, version in components_for(cluster)
            for i in component_images(component, version) if not in_registry(registry, i)]


def build_for(
    cluster: Cluster,
    *,
    files_dir: Path = FILES_DIR,
    cache_dir: Path = CACHE_DIR,
    progress: Progress = lambda _m: None,
) -> list[Built]:
    """Build (or find cached) everything the spec needs and publish it into files_dir."""
    out = []
    for component, version in components_for(cluster):
        built = build(component, version, cache_dir=cache_dir, progress=progress)
        publish(built, files_dir)
        out.append(built)
    return out
