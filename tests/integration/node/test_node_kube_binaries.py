"""kube_binaries through the download role: fetched, checksum-verified, installed once.

The artifact source is an HTTP server inside the test host itself (127.0.0.1), serving a
stand-in file as "kubelet"; the spec names its URL and sha256, as a user's spec would.
"""

from __future__ import annotations

import hashlib

import pytest
from nodelab import ROOT, Lab

pytestmark = pytest.mark.integration

HOST = "kpckb-node-1"
PAYLOAD = b"#!/bin/sh\necho stand-in kubelet\n"
SPEC = {
    "metadata": {"name": "kpckb"},
    "spec": {
        "cloud": "local",
        "local": {"subnet": "10.214.245.0/24"},
        "nodeGroups": [{"name": "node", "count": 1}],
    },
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with Lab.running(SPEC, tmp_path_factory.mktemp("kube-binaries"), only=[HOST]) as lab:
        lab.sh(HOST, "mkdir -p /srv/files")
        lab.sh(HOST, f"cat > /srv/files/kubelet <<'EOF'\n{PAYLOAD.decode()}EOF")
        lab.sh(HOST, "systemd-run --unit files python3 -m http.server 8000 --bind 127.0.0.1 --directory /srv/files")
        yield lab


def with_artifact(lab: Lab, sha256: str) -> None:
    cluster = lab.cluster.model_copy(deep=True)
    item = cluster.spec.artifacts.items["kubelet"]
    item.url = "http://127.0.0.1:8000/kubelet"
    item.sha256 = sha256
    lab.write_inventory(cluster)


def run(lab: Lab):
    return lab.playbook(ROOT / "playbooks/kubelet.yml", "--tags", "kube_binaries", limit=HOST,
                        # this test is about the download itself
                        extra_vars={"kube_binaries_node": ["kubelet"],
                                    "kube_binaries_skip_download": False})


def test_wrong_checksum_installs_nothing(lab):
    with_artifact(lab, "0" * 64)
    r = run(lab)
    assert r.rc != 0 and r.recap[HOST]["failed"] == 1
    assert "checksum" in r.output.lower()
    assert lab.sh(HOST, "test -e /usr/local/bin/kubelet && echo yes || echo no").strip() == "no"


def test_verified_binary_is_installed_once(lab):
    served = lab.sh(HOST, "cat /srv/files/kubelet").encode()
    with_artifact(lab, hashlib.sha256(served).hexdigest())
    run(lab).assert_ok()
    assert lab.stat(HOST, "/usr/local/bin/kubelet") == ("755", "root:root")
    assert lab.sh(HOST, "/usr/local/bin/kubelet").strip() == "stand-in kubelet"
    run(lab).assert_no_change()
