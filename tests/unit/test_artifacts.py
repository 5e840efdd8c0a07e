"""The artifacts stage without compiling: what is pinned, what a spec needs, the layout of
the files repository, and the go.mod generated for other Kubernetes versions."""

from __future__ import annotations

import hashlib
import re
import tarfile
from pathlib import Path

import pytest

from kpyops.artifacts import COMPONENTS
from kpyops.artifacts.build import Built, go_binary_name, ldflags
from kpyops.artifacts.catalog import GO_DIR, KUBERNETES
from kpyops.artifacts.files import publish
from kpyops.artifacts.gomod import kubernetes_go_mod, staging_modules
from kpyops.artifacts.needs import components_for, missing_files
from kpyops.spec import complete
from kpyops.spec.model import Cluster

UPSTREAM_GO_MOD = """module k8s.io/kubernetes

go 1.25.0

godebug default=go1.25

require (
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/kube-proxy => ./staging/src/k8s.io/kube-proxy
)
"""


def test_every_component_has_a_pinned_module_with_go_sum():
    for name, component in COMPONENTS.items():
        folder = component.folder()
        assert (folder / "go.mod").exists(), name
        assert (folder / "go.sum").exists() or component.module == "", name  # ours: stdlib only
        assert re.fullmatch(r"\d+\.\d+(\.\d+)?", component.version()), name


def test_every_program_is_a_tool_of_its_module():
    """`go mod tidy` keeps the dependencies of tool packages: each program must be one."""
    for name, component in COMPONENTS.items():
        if component.module == "":  # ours: the folder is the program
            continue
        text = (component.folder() / "go.mod").read_text()
        block = re.search(r"^tool \((.*?)^\)", text, re.S | re.M)
        tools = block[1].split() if block else re.findall(r"^tool (\S+)$", text, re.M)
        assert sorted(tools) == sorted(p.package for p in component.programs), name


def test_generated_go_mod_replaces_every_staging_module_with_its_published_version():
    text = kubernetes_go_mod("1.36.3", UPSTREAM_GO_MOD)
    assert "require k8s.io/kubernetes v1.36.3" in text
    assert "godebug default=go1.25" in text  # upstream's runtime defaults kept
    replaces = dict(re.findall(r"^\t(k8s\.io/\S+) => \S+ (v\S+)$", text, re.M))
    assert replaces == {m: "v0.36.3" for m in ("k8s.io/api", "k8s.io/client-go", "k8s.io/kube-proxy")}


def test_committed_kubernetes_go_mod_is_the_generators_output():
    """The committed go.mod is the generator's for the pinned version (after go mod tidy)."""
    ours = (GO_DIR / "kubernetes" / "go.mod").read_text()
    version = KUBERNETES.version()
    replaces = dict(re.findall(r"^\t(k8s\.io/\S+) => \S+ (v\S+)$", ours, re.M))
    minor, patch = version.split(".")[1:]
    assert set(replaces.values()) == {f"v0.{minor}.{patch}"}
    assert len(replaces) >= 31  # 1.35 has 31 staging modules
    assert staging_modules(UPSTREAM_GO_MOD) == ["k8s.io/api", "k8s.io/client-go", "k8s.io/kube-proxy"]


@pytest.mark.parametrize(
    ("package", "name"),
    [
        ("go.etcd.io/etcd/server/v3", "server"),
        ("go.etcd.io/etcd/etcdctl/v3", "etcdctl"),
        ("k8s.io/kubernetes/cmd/kubelet", "kubelet"),
        ("github.com/opencontainers/runc", "runc"),
    ],
)
def test_go_binary_name(package, name):
    assert go_binary_name(package) == name


def test_kubernetes_binaries_are_stamped_with_their_version():
    flags = ldflags(KUBERNETES, "1.35.4")[0]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {pkg}.gitVersion=v1.35.4" in flags
        assert f"-X {pkg}.gitMajor=1" in flags and f"-X {pkg}.gitMinor=35" in flags
    assert flags.startswith("-s -w")


def local_cluster(**spec) -> Cluster:
    return complete(Cluster.model_validate({"metadata": {"name": "art"}, "spec": spec}))


def test_a_local_spec_needs_every_component_at_the_pinned_versions():
    c = local_cluster()
    wanted = {comp.name: v for comp, v in components_for(c)}
    assert wanted == {name: comp.version() for name, comp in COMPONENTS.items()}
    # and the spec says where they come from: the files repository and the local registry
    assert all(item.url is None for item in c.spec.artifacts.items.values())
    registry = f"http://{c.spec.local.subnet.network_address + 2}:5000"
    assert c.spec.container_runtime.registry_mirrors == {"registry.k8s.io": [registry]}
    assert c.spec.kubelet.fail_cgroup_v1 is False


def test_a_baremetal_spec_builds_nothing_and_keeps_cgroup_v1_refused():
    c = complete(Cluster.model_validate({
        "metadata": {"name": "metal"},
        "spec": {"cloud": "baremetal",
                 "controlPlane": {"hosts": [{"name": "cp1", "address": "192.0.2.10"}]},
                 "nodeGroups": [{"name": "n", "hosts": [{"name": "n1", "address": "192.0.2.11"}]}]},
    }))
    assert components_for(c) == []
    assert c.spec.kubelet.fail_cgroup_v1 is None  # kubelet's own default (true) applies


def fake_built(tmp_path: Path, name: str, version: str) -> Built:
    component = COMPONENTS[name]
    folder = tmp_path / "cache" / name / version
    folder.mkdir(parents=True)
    sha = {}
    for p in component.programs:
        if p.name in component.optional:
            continue
        (folder / p.name).write_bytes(f"#!{p.name}\n".encode())
        sha[p.name] = hashlib.sha256((folder / p.name).read_bytes()).hexdigest()
    return Built(component, version, folder, sha, 1.0, cached=False)


def test_tarballs_have_upstreams_layout_and_are_reproducible(tmp_path):
    files = tmp_path / "files"
    built = fake_built(tmp_path, "containerd", "2.2.9")
    first = publish(built, files)
    tarball = files / "containerd" / "2.2.9" / "containerd-2.2.9-linux-amd64.tar.gz"
    assert first == {"containerd/2.2.9/containerd-2.2.9-linux-amd64.tar.gz": hashlib.sha256(tarball.read_bytes()).hexdigest()}
    with tarfile.open(tarball) as tar:
        assert sorted(tar.getnames()) == ["bin/containerd", "bin/containerd-shim-runc-v2", "bin/ctr"]
        assert {m.mtime for m in tar.getmembers()} == {0}
    assert (tarball.parent / (tarball.name + ".sha256")).read_text().split()[0] == first[next(iter(first))]
    # remade from scratch, the archive is byte-for-byte the same
    tarball.unlink()
    assert publish(built, files) == first


def test_binaries_are_published_one_artifact_each(tmp_path):
    files = tmp_path / "files"
    out = publish(fake_built(tmp_path, "kubernetes", "1.35.4"), files)
    assert sorted(out) == sorted(f"{n}/1.35.4/{n}" for n in
                                 ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl"))
    assert "kube-proxy/1.35.4/kube-proxy" not in out  # the reference proxy is never published by default


def test_missing_files_names_what_a_host_would_fail_to_fetch(tmp_path):
    c = local_cluster()
    files = tmp_path / "files"
    before = missing_files(c, files)
    assert f"kubelet/{c.spec.kubernetes_version}/kubelet" in before
    assert any(p.endswith("runc.amd64") for p in before)
    publish(fake_built(tmp_path, "runc", COMPONENTS["runc"].version()), files)
    assert not any(p.endswith("runc.amd64") for p in missing_files(c, files))
