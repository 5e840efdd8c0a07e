"""`validate cluster`'s judgement of what the API says, and `export kubeconfig`'s files.

The API is a test double here (answers recorded as the real kube-apiserver gives them); the
same code runs against a real cluster in tests/integration/cluster/test_local_cluster.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import stat

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from k8sref import validate_object

from kpyops import kubeconfig as kc
from kpyops import validate as v
from kpyops.pki.x509 import (
    Sans,
    Subject,
    cert_pem,
    issue,
    key_pem,
    make_ca,
    new_key,
    same_public_key,
    signed_by,
)
from kpyops.spec import complete, parse


def node(name: str, ready: str = "True", reason: str = "") -> dict:
    return {"metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": reason}]}}


def pod(name: str, phase: str = "Running", ready: str = "True", node_name: str = "") -> dict:
    return {"metadata": {"name": name}, "spec": {"nodeName": node_name},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]}}


@pytest.mark.parametrize(("text", "seconds"), [
    ("18h", 18 * 3600), ("90m", 5400), ("1h30m", 5400), ("45s", 45), ("0.5h", 1800), ("500ms", 0.5)])
def test_durations(text, seconds):
    assert kc.parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "18", "h", "18x", "1h 30m", "-1h", "18h!", "2d"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError, match="not a duration"):
        kc.parse_duration(text)


def test_nodes_missing_not_ready_and_unknown_are_each_named():
    found = v.check_nodes([node("a"), node("b", "False", "KubeletNotReady"), node("stray")],
                          ["a", "b", "c"])
    assert [(f.item, f.ok) for f in found] == [
        ("node a", True), ("node b", False), ("node c", False), ("node stray", False)]
    assert "KubeletNotReady" in found[1].detail and "not registered" in found[2].detail


def test_control_plane_pods_of_every_control_plane_and_other_kube_system_pods():
    pods = [pod("kube-apiserver-cp-1"), pod("kube-controller-manager-cp-1"),
            pod("kube-scheduler-cp-1", phase="Pending", ready="False"),
            pod("coredns-1", ready="False"), pod("coredns-2"), pod("job-x", phase="Succeeded", ready="False")]
    found = {f.item: f.ok for f in v.check_kube_system(pods, ["cp-1", "cp-2"])}
    assert found == {
        "pod kube-system/kube-apiserver-cp-1": True,
        "pod kube-system/kube-controller-manager-cp-1": True,
        "pod kube-system/kube-scheduler-cp-1": False,
        "pod kube-system/kube-apiserver-cp-2": False,
        "pod kube-system/kube-controller-manager-cp-2": False,
        "pod kube-system/kube-scheduler-cp-2": False,
        "pod kube-system/coredns-1": False,
        "pod kube-system/coredns-2": True,
    }


def test_probe_needs_a_ready_probe_pod_on_every_node():
    found = v.check_probe([pod("probe-a", node_name="a"), pod("probe-b", ready="False", node_name="b")],
                          ["a", "b", "c"])
    assert [(f.item, f.ok) for f in found] == [("probe on a", True), ("probe on b", False),
                                               ("probe on c", False)]


def test_probe_objects_are_valid_and_meet_the_restricted_pod_security_level():
    objs = v.probe_objects("registry.k8s.io/kpyops/probe:0.1.0", "cluster.local")
    for obj in objs:
        validate_object(obj, "1.35.0")
    ns, svc, ds = objs
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert svc["spec"]["publishNotReadyAddresses"] is True  # a probe pod may answer before it is Ready
    spec = ds["spec"]["template"]["spec"]
    c = spec["containers"][0]
    assert c["readinessProbe"]["exec"]["command"] == [
        "/probe", "check", "http://probe.kpyops-validate.svc.cluster.local:8080/healthz"]
    assert spec["securityContext"]["runAsNonRoot"] and c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert [v._path(o) for o in objs] == [
        "/api/v1/namespaces/kpyops-validate",
        "/api/v1/namespaces/kpyops-validate/services/probe",
        "/apis/apps/v1/namespaces/kpyops-validate/daemonsets/probe"]


class FakeApi:
    """Answers in turn: each round of validate reads the next state of the cluster."""

    def __init__(self, rounds: list[dict]):
        self.rounds, self.round, self.applied = rounds, -1, []
        self.client = type("C", (), {"host": "https://10.0.0.10:6443"})()

    def items(self, path: str, **params) -> list[dict]:
        if path == "/api/v1/nodes":
            self.round = min(self.round + 1, len(self.rounds) - 1)
        return self.rounds[self.round][path]

    def get_text(self, path: str) -> str:
        return self.rounds[self.round][path]

    def apply(self, obj: dict) -> None:
        self.applied.append(obj["kind"])


def state(node_ready: str, probe_ready: str) -> dict:
    return {
        "/api/v1/nodes": [node("cp-1"), node("n-1", node_ready)],
        "/api/v1/namespaces/kube-system/pods": [pod(f"{c}-cp-1") for c in v.CONTROL_PLANE_PODS],
        "/api/v1/namespaces/kpyops-validate/pods": [pod("p1", node_name="cp-1"),
                                                    pod("p2", ready=probe_ready, node_name="n-1")],
        "/readyz/etcd": "HTTP 200: ok",
    }


EXPECTED = v.Expected(nodes=("cp-1", "n-1"), control_planes=("cp-1",), etcd=(),
                      cluster_domain="cluster.local", probe_image="registry.k8s.io/kpyops/probe:0.1.0")


def test_validate_waits_until_every_check_passes():
    api = FakeApi([state("False", "False"), state("True", "False"), state("True", "True")])
    now = [0.0]
    said = []
    found = v.validate(api, EXPECTED, None, wait=60, interval=5, progress=said.append,
                       clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert all(f.ok for f in found) and now[0] == 10
    assert "etcd (as the API servers see it)" in [f.item for f in found]
    assert api.applied == ["Namespace", "Service", "DaemonSet"] * 3
    assert len(said) == 2 and "node n-1" in said[0] and "probe on n-1" in said[1]


def test_validate_gives_the_last_findings_when_time_runs_out():
    api = FakeApi([state("False", "False")])
    now = [0.0]
    found = v.validate(api, EXPECTED, None, wait=12, interval=5,
                       clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert now[0] == 12
    assert sorted(f.item for f in found if not f.ok) == ["node n-1", "probe on n-1"]


def test_without_a_probe_image_the_probe_is_said_not_run_and_nothing_applied():
    api = FakeApi([state("True", "True")])
    found = v.validate_once(api, v.Expected(**{**EXPECTED.__dict__, "probe_image": None}), None)
    assert api.applied == []
    probe = next(f for f in found if f.item == "probe")
    assert "not run" in probe.detail


@pytest.fixture
def pki(tmp_path):
    ca_key = new_key("ecdsa", 256)
    (tmp_path / "ca.crt").write_bytes(cert_pem(make_ca(ca_key, "kubernetes", days=365)))
    (tmp_path / "ca.key").write_bytes(key_pem(ca_key))
    return tmp_path


def test_admin_credential_is_signed_by_the_cluster_ca_and_expires_after_its_ttl(pki):
    before = dt.datetime.now(dt.UTC)
    cert_bytes, key_bytes = kc.admin_credential(pki, dt.timedelta(hours=2))
    cert = x509.load_pem_x509_certificate(cert_bytes)
    assert signed_by(cert, x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes()))
    assert same_public_key(cert, serialization.load_pem_private_key(key_bytes, None))
    assert cert.subject.rfc4514_string() == "CN=kubernetes-admin,O=system:masters"
    left = cert.not_valid_after_utc - before
    assert dt.timedelta(hours=2, seconds=-1) <= left < dt.timedelta(hours=2, minutes=1)  # whole seconds
    with pytest.raises(ValueError):
        kc.admin_credential(pki, dt.timedelta(0))


def test_export_merges_like_kubectl_and_writes_a_private_file(pki, tmp_path):
    path = tmp_path / "home" / ".kube" / "config"
    path.parent.mkdir(parents=True)
    other = {"apiVersion": "v1", "kind": "Config", "current-context": "prod",
             "clusters": [{"name": "prod", "cluster": {"server": "https://prod:6443"}},
                          {"name": "demo", "cluster": {"server": "https://old:6443"}}],
             "users": [{"name": "prod", "user": {"token": "t"}}],
             "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "prod"}}]}
    path.write_text(yaml.safe_dump(other))
    cert, key = kc.admin_credential(pki, dt.timedelta(hours=1))
    kc.write_merged(path, kc.kubeconfig("demo", "https://10.0.0.10:6443", b"CA", cert, key))
    merged = yaml.safe_load(path.read_text())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert merged["current-context"] == "demo"
    assert [c["name"] for c in merged["clusters"]] == ["prod", "demo"]
    assert merged["clusters"][1]["cluster"]["server"] == "https://10.0.0.10:6443"
    assert [u["name"] for u in merged["users"]] == ["prod", "demo"]
    assert merged["users"][0] == other["users"][0]
    assert base64.b64decode(merged["users"][1]["user"]["client-certificate-data"]) == cert
    assert [c["name"] for c in merged["contexts"]] == ["prod", "demo"]


def test_export_refuses_a_file_that_is_not_a_kubeconfig_and_leaves_it(tmp_path):
    path = tmp_path / "config"
    path.write_text("- a list\n")
    with pytest.raises(kc.KubeconfigError, match="not a kubeconfig"):
        kc.write_merged(path, kc.kubeconfig("demo", "https://x:6443", b"", b"", b""))
    assert path.read_text() == "- a list\n"


def test_the_api_address_is_the_load_balancer_else_the_first_control_plane():
    local = complete(parse({"metadata": {"name": "demo"}, "spec": {"cloud": "local"}}))
    cp = local.spec.control_plane.hosts[0]
    assert kc.api_server_url(local) == f"https://{cp.address}:6443"
    external = complete(parse({"metadata": {"name": "demo"}, "spec": {
        "cloud": "local", "controlPlane": {"apiLoadBalancer": {"type": "external",
                                                                "address": "api.example.org"}}}}))
    assert kc.api_server_url(external) == "https://api.example.org:6443"
    assert kc.api_server_url(external, "lb-123.elb.amazonaws.com") == "https://lb-123.elb.amazonaws.com:6443"


def test_issue_takes_fractions_of_a_day(pki):
    key = new_key("ecdsa", 256)
    from kpyops.pki.x509 import load_cert, load_key
    cert = issue(ca_cert=load_cert(pki / "ca.crt"), ca_key=load_key(pki / "ca.key"), key=key,
                 subject=Subject("x"), usages=("client",), sans=Sans(), days=0.25)
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(hours=6) < life <= dt.timedelta(hours=6, minutes=6)
