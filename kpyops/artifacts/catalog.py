"""What kpyops builds from Go modules: one Component per upstream project.

A component is one Go module folder under ``go/`` (our go.mod and go.sum, nothing else but
the few lines of Go we own), the programs built from it, and the file the files repository
serves for it (``<artifact>/<version>/<file>``, the same name and layout as the upstream
release, so production hosts and local hosts run the same download-and-verify tasks).
The version of every component is read from its go.mod: that file is the one place a
pinned version lives.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

GO_DIR = Path(__file__).resolve().parents[2] / "go"


@dataclass(frozen=True)
class Program:
    """One binary: its installed name and the Go package its main lives in."""

    name: str
    package: str


@dataclass(frozen=True)
class Component:
    name: str  # folder under go/, and the artifact name in the files repository
    module: str  # the upstream module whose required version is the component's version
    programs: tuple[Program, ...]
    # How the files repository lays it out: "binaries" (each program its own artifact,
    # named like it), "file" (the one program under the upstream release's file name),
    # "tarball" (one archive, the upstream release's name), or "image" (an OCI image only,
    # pushed to the registry).
    layout: str = "binaries"
    archive: str = ""  # for "file" and "tarball": the file name; {v} is the version
    archive_prefix: str = ""  # each program's folder inside the archive; {v} is the version
    cgo: bool = False
    tags: tuple[str, ...] = ()
    # -X flags, each "package.variable={v}"; {v} is the version without a leading "v"
    stamps: tuple[str, ...] = ()
    images: tuple[str, ...] = ()  # programs also shipped as images FROM scratch
    optional: tuple[str, ...] = ()  # programs built only on request (reference builds)
    extra_ldflags: tuple[str, ...] = field(default=())

    def folder(self, go_dir: Path = GO_DIR) -> Path:
        return go_dir / self.name

    def version(self, go_dir: Path = GO_DIR) -> str:
        """The pinned version from go.mod, without the leading v (1.35.4, 3.6.16)."""
        if self.module == "":
            return read_own_version(self.folder(go_dir))
        text = (self.folder(go_dir) / "go.mod").read_text()
        found = re.search(rf"^\s*(?:require\s+)?{re.escape(self.module)}\s+v(\S+)", text, re.M)
        if not found:
            raise LookupError(f"go/{self.name}/go.mod does not require {self.module}")
        return found[1]

    def file_name(self, version: str) -> str:
        return self.archive.format(v=version)


def read_own_version(folder: Path) -> str:
    """Programs we own carry their version in a VERSION file beside go.mod."""
    return (folder / "VERSION").read_text().strip()


K8S_VERSION_PACKAGES = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")

KUBERNETES = Component(
    name="kubernetes",
    module="k8s.io/kubernetes",
    programs=tuple(
        Program(n, f"k8s.io/kubernetes/cmd/{n}")
        for n in (
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kubelet",
            "kubectl",
            "kube-proxy",
        )
    ),
    tags=("selinux", "notest"),
    stamps=tuple(
        f"{pkg}.{var}={value}"
        for pkg in K8S_VERSION_PACKAGES
        for var, value in (
            ("gitVersion", "v{v}"),
            ("gitMajor", "{major}"),
            ("gitMinor", "{minor}"),
            ("gitTreeState", "clean"),
        )
    ),
    images=("kube-apiserver", "kube-controller-manager", "kube-scheduler"),
    # upstream's kube-proxy: a reference for comparison tests and benchmarks, never installed
    optional=("kube-proxy",),
)

ETCD = Component(
    name="etcd",
    module="go.etcd.io/etcd/server/v3",
    programs=(
        Program("etcd", "go.etcd.io/etcd/server/v3"),
        Program("etcdctl", "go.etcd.io/etcd/etcdctl/v3"),
        Program("etcdutl", "go.etcd.io/etcd/etcdutl/v3"),
    ),
    layout="tarball",
    archive="etcd-v{v}-linux-amd64.tar.gz",
    archive_prefix="etcd-v{v}-linux-amd64/",
)

CONTAINERD = Component(
    name="containerd",
    module="github.com/containerd/containerd/v2",
    programs=(
        Program("containerd", "github.com/containerd/containerd/v2/cmd/containerd"),
        Program(
            "containerd-shim-runc-v2", "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
        ),
        Program("ctr", "github.com/containerd/containerd/v2/cmd/ctr"),
    ),
    layout="tarball",
    archive="containerd-{v}-linux-amd64.tar.gz",
    archive_prefix="bin/",
    tags=("no_btrfs", "no_devmapper", "no_zfs"),
    stamps=("github.com/containerd/containerd/v2/version.Version=v{v}",),
)

RUNC = Component(
    name="runc",
    module="github.com/opencontainers/runc",
    programs=(Program("runc", "github.com/opencontainers/runc"),),
    layout="file",
    archive="runc.amd64",
    # runc's nsenter is C, and seccomp needs libseccomp: static, as upstream releases it
    cgo=True,
    tags=("seccomp", "netgo", "osusergo"),
    stamps=("main.version={v}",),
    extra_ldflags=("-extldflags", "-static"),
)

CNI = Component(
    name="cni-plugins",
    module="github.com/containernetworking/plugins",
    programs=tuple(
        Program(n, f"github.com/containernetworking/plugins/plugins/{kind}/{n}")
        for kind, n in (("main", "bridge"), ("main", "loopback"), ("ipam", "host-local"), ("meta", "portmap"))
    ),
    layout="tarball",
    archive="cni-plugins-linux-amd64-v{v}.tgz",
    archive_prefix="./",
    stamps=("github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=v{v}",),
)

COREDNS = Component(
    name="coredns",
    module="github.com/coredns/coredns",
    programs=(Program("coredns", "github.com/coredns/coredns"),),
    layout="image",
    images=("coredns",),
)

PAUSE = Component(
    name="pause",
    module="",
    programs=(Program("pause", "kpyops.io/build/pause"),),
    layout="image",
    images=("pause",),
    stamps=("main.version={v}",),
)

# kpyops' test workload (serve HTTP, check URLs, look names up), for `validate cluster`
PROBE = Component(
    name="probe",
    module="",
    programs=(Program("probe", "kpyops.io/build/probe"),),
    layout="image",
    images=("probe",),
    stamps=("main.version={v}",),
)

COMPONENTS: dict[str, Component] = {
    c.name: c for c in (KUBERNETES, ETCD, CONTAINERD, RUNC, CNI, COREDNS, PAUSE, PROBE)
}
