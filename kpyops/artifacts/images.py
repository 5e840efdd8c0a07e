"""OCI images of the built programs, FROM scratch, pushed into a registry.

Each image holds one static binary (and nothing else), built with ``podman build`` with a
fixed timestamp so the same binary gives the same image digest. Names follow upstream
(``<repository>/kube-apiserver:v1.35.4``, ``pause:3.10``, ``coredns/coredns:v1.15.0``) so
that containerd, told by ``hosts.toml`` to pull registry.k8s.io through a mirror, finds
them there: the path an air-gapped cluster takes.
"""

from __future__ import annotations

import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from kpyops.artifacts.build import Built
from kpyops.artifacts.catalog import Component

# Where upstream publishes each image, relative to registry.k8s.io, and its tag form.
IMAGE_NAMES = {
    "kube-apiserver": ("kube-apiserver", "v{v}"),
    "kube-controller-manager": ("kube-controller-manager", "v{v}"),
    "kube-scheduler": ("kube-scheduler", "v{v}"),
    "pause": ("pause", "{v}"),
    "coredns": ("coredns/coredns", "v{v}"),
    "probe": ("kpyops/probe", "{v}"),  # ours: served only by a registry kpyops fills
}
# How each image starts: the control-plane manifests name their command, so those images
# only need the binary on PATH; pause and CoreDNS run their entrypoint.
CONTAINERFILES = {
    "pause": "FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT [\"/pause\"]\n",
    "coredns": "FROM scratch\nCOPY coredns /coredns\nENTRYPOINT [\"/coredns\"]\n",
    "probe": "FROM scratch\nCOPY probe /probe\nUSER 65534:65534\nENTRYPOINT [\"/probe\"]\n",
}
DEFAULT_CONTAINERFILE = (
    "FROM scratch\nENV PATH=/usr/local/bin\nCOPY {name} /usr/local/bin/{name}\n"
    "ENTRYPOINT [\"/usr/local/bin/{name}\"]\n"
)


class ImageError(RuntimeError):
    pass


@dataclass(frozen=True)
class Image:
    program: str
    path: str  # repository path under the registry, e.g. coredns/coredns
    tag: str

    def reference(self, registry: str) -> str:
        return f"{registry}/{self.path}:{self.tag}"


def upstream_reference(program: str, version: str) -> str:
    """The name a cluster pulls an image by (registry.k8s.io/..., through its mirror)."""
    path, tag = IMAGE_NAMES[program]
    return f"registry.k8s.io/{path}:{tag.format(v=version)}"


def images_of(built: Built) -> list[Image]:
    return component_images(built.component, built.version)


def component_images(component: Component, version: str) -> list[Image]:
    out = []
    for program in component.images:
        path, tag = IMAGE_NAMES[program]
        out.append(Image(program, path, tag.format(v=version)))
    return out


def in_registry(registry: str, image: Image) -> bool:
    """Does the registry (plain HTTP, host:port) serve this image's manifest?"""
    req = urllib.request.Request(
        f"http://{registry}/v2/{image.path}/manifests/{image.tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json,"
                 "application/vnd.docker.distribution.manifest.v2+json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status == 200
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return False
        raise ImageError(f"registry {registry}: {err}") from err
    except OSError as err:
        raise ImageError(f"registry {registry} does not answer: {err}") from err


def build_and_push(built: Built, registry: str, *, podman: str = "podman", progress=lambda _m: None) -> list[str]:
    """Build each image of the component and push it; images already there are left alone.
    Returns the references pushed."""
    pushed = []
    for image in images_of(built):
        if in_registry(registry, image):
            continue
        ref = image.reference(registry)
        progress(f"pushing image {ref}")
        with tempfile.TemporaryDirectory() as ctx:
            Path(ctx, image.program).write_bytes(built.path(image.program).read_bytes())
            Path(ctx, image.program).chmod(0o755)
            text = CONTAINERFILES.get(image.program, DEFAULT_CONTAINERFILE.format(name=image.program))
            Path(ctx, "Containerfile").write_text(text)
            _podman([podman, "build", "--quiet", "--timestamp", "0", "--network", "none",
                     "-t", ref, "-f", "Containerfile", ctx])
        _podman([podman, "push", "--quiet", "--tls-verify=false", ref])
        pushed.append(ref)
    return pushed


def _podman(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ImageError(f"{' '.join(cmd[:2])}: {proc.stderr.strip()[-2000:]}")
