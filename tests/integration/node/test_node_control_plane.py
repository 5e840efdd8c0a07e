"""control_plane role on 3 test hosts: files and CIS modes, idempotence, one flag change
rewriting exactly one manifest on each control plane (one at a time), and an
encryption-at-rest key made once in the state folder and never replaced.

No kubelet runs here, so control_plane_wait_for_health is false and the role says so.
"""

from __future__ import annotations

import pytest
import yaml
from nodelab import ROOT, Lab

pytestmark = pytest.mark.integration

PLAYBOOK = ROOT / "playbooks/control_plane.yml"
NO_WAIT = {"control_plane_wait_for_health": False}
CPS = ["kpccp-cp-1", "kpccp-cp-2", "kpccp-cp-3"]
SPEC = {
    "metadata": {"name": "kpccp"},
    "spec": {
        "cloud": "local",
        "local": {"subnet": "10.214.243.0/24"},
        "controlPlane": {"count": 3},
        "nodeGroups": [{"name": "node", "count": 0}],
    },
}
MANIFESTS = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]
# CIS 1.1.x: path -> (mode at most, owner)
CIS_FILES = {
    "/etc/kubernetes/manifests/kube-apiserver.yaml": "600",  # 1.1.1, 1.1.2
    "/etc/kubernetes/manifests/kube-controller-manager.yaml": "600",  # 1.1.3, 1.1.4
    "/etc/kubernetes/manifests/kube-scheduler.yaml": "600",  # 1.1.5, 1.1.6
    "/etc/kubernetes/admin.conf": "600",  # 1.1.13, 1.1.14
    "/etc/kubernetes/scheduler.conf": "600",  # 1.1.15, 1.1.16
    "/etc/kubernetes/controller-manager.conf": "600",  # 1.1.17, 1.1.18
    "/etc/kubernetes/encryption/encryption-config.yaml": "600",  # 1.2.27 (readable by root only)
    "/etc/kubernetes/audit/audit-policy.yaml": "600",  # 3.2.1
    "/etc/kubernetes/admission/admission-config.yaml": "600",  # 1.2.9
    "/etc/kubernetes/admission/eventratelimit.yaml": "600",
    "/etc/kubernetes/authentication/authentication-config.yaml": "600",  # 1.2.1
    "/var/log/kubernetes/audit": "700",  # audit log folder
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with Lab.running(SPEC, tmp_path_factory.mktemp("control-plane")) as lab:
        # the first converge and its re-run (verbose, to show no secret leaks), shared by the tests
        lab.first = run(lab)
        lab.key_after_first = key_file(lab).read_bytes() if key_file(lab).exists() else b""
        lab.second = lab.playbook(PLAYBOOK, "-v", extra_vars=NO_WAIT)
        lab.key_after_second = key_file(lab).read_bytes() if key_file(lab).exists() else b""
        yield lab


def run(lab: Lab, *args):
    return lab.playbook(PLAYBOOK, *args, extra_vars=NO_WAIT)


def digests(lab: Lab, host: str) -> dict[str, str]:
    out = lab.sh(host, "cd /etc/kubernetes && find . -type f | sort | xargs sha256sum")
    return {line.split()[1]: line.split()[0] for line in out.splitlines()}


def key_file(lab: Lab):
    return lab.workdir / "state" / "secrets" / "encryption-at-rest-secretbox.key"


def test_1_converge_files_modes_and_idempotence(lab):
    lab.first.assert_ok()
    lab.second.assert_no_change()
    for host in CPS:
        for path, mode in CIS_FILES.items():
            got_mode, owner = lab.stat(host, path)
            assert owner == "root:root", (host, path)
            assert int(got_mode, 8) & ~int(mode, 8) == 0, (host, path, got_mode)  # bitmask check
        pod = yaml.safe_load(lab.sh(host, "cat /etc/kubernetes/manifests/kube-apiserver.yaml"))
        assert pod["kind"] == "Pod"
        addr = lab.sh(host, "hostname -I").split()[0]
        assert f"--advertise-address={addr}" in pod["spec"]["containers"][0]["command"]


def test_2_encryption_key_made_once_in_state_and_on_every_host(lab):
    key = key_file(lab)
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    secret = key.read_text().strip()
    for host in CPS:
        assert secret in lab.sh(host, "cat /etc/kubernetes/encryption/encryption-config.yaml")
    # made by the first converge; the re-run (-v) kept it and never showed it (no_log)
    assert "Encryption key | Generate the secretbox key once" in lab.first.output
    assert secret not in lab.first.output and secret not in lab.second.output
    assert lab.key_after_first == lab.key_after_second == key.read_bytes()


def test_3_one_apiserver_flag_change_rewrites_exactly_that_manifest(lab):
    before = {h: digests(lab, h) for h in CPS}
    cluster = lab.cluster.model_copy(deep=True)
    cluster.spec.control_plane.extra_args = {"kube-apiserver": {"max-requests-inflight": "801"}}
    lab.write_inventory(cluster)
    # --check --diff tells the truth first: that manifest would change, nothing is written,
    # and no secret shows in the diff
    check = run(lab, "--check", "--diff")
    check.assert_ok()
    assert "+        - \"--max-requests-inflight=801\"" in check.output
    assert key_file(lab).read_text().strip() not in check.output
    for host in CPS:
        assert digests(lab, host) == before[host]
        assert check.recap[host]["changed"] == 1
    r = run(lab)
    r.assert_ok()
    for host in CPS:
        after = digests(lab, host)
        changed = sorted(p for p in after if after[p] != before[host].get(p))
        assert changed == ["./manifests/kube-apiserver.yaml"], (host, changed)
        assert "--max-requests-inflight=801" in lab.sh(
            host, "cat /etc/kubernetes/manifests/kube-apiserver.yaml"
        )
        assert r.recap[host]["changed"] == 1
    # serial 1: every task of cp-1 ran before cp-2's first manifest write
    ev = [(t, h) for t, h, s in r.events() if s == "changed"]
    assert [h for _, h in ev] == CPS
    run(lab).assert_no_change()
    assert key_file(lab).read_bytes() == lab.key_after_first  # never replaced by a re-run


def test_4_policy_file_change_restarts_only_the_apiserver(lab):
    """A changed EventRateLimit file changes the apiserver manifest (its config hash) and
    nothing else, so kubelet restarts exactly that component."""
    before = {h: digests(lab, h) for h in CPS}
    limits = [{"type": "Server", "qps": 4000, "burst": 16000}]
    r = lab.playbook(PLAYBOOK, extra_vars={**NO_WAIT, "control_plane_event_rate_limits": limits})
    r.assert_ok()
    for host in CPS:
        after = digests(lab, host)
        changed = sorted(p for p in after if after[p] != before[host].get(p))
        assert changed == ["./admission/eventratelimit.yaml", "./manifests/kube-apiserver.yaml"], (host, changed)
