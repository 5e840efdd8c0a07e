"""CoreDNS: Corefile golden tests for the default and every option, and the add-on objects."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from k8sref import validate_object
from rolerender import Inventory, RoleRenderer

from kpyops.artifacts.catalog import COREDNS
from kpyops.spec.complete import complete
from kpyops.spec.errors import SpecError
from kpyops.spec.io import parse

GOLDEN = Path(__file__).with_name("golden") / "corefile"
UPDATE = os.environ.get("KPYOPS_UPDATE_GOLDEN") == "1"

CASES = {
    "default": {},
    "pods-verified": {"pods": "verified"},
    "pods-disabled": {"pods": "disabled"},
    "autopath": {"pods": "verified", "autopath": True},
    "endpoint-pod-names": {"endpointPodNames": True},
    "stub-domains": {"stubDomains": {"corp.example": ["10.0.0.53", "10.0.1.53"],
                                     "consul.local": ["10.1.0.10"]}},
    "upstreams-and-cache": {"upstreams": ["1.1.1.1", "9.9.9.9"], "cacheTTL": 300},
    "everything": {"pods": "verified", "autopath": True, "endpointPodNames": True,
                   "stubDomains": {"corp.example": ["10.0.0.53"]},
                   "upstreams": ["10.0.0.1"], "cacheTTL": 10},
}


def renderer(dns: dict, **spec) -> RoleRenderer:
    inv = Inventory({"metadata": {"name": "demo"}, "spec": {"dns": dns, **spec}})
    return RoleRenderer("coredns", inv, inv.host("kube_control_plane"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_corefile_golden(case):
    text = renderer(CASES[case]).render("Corefile.j2")
    golden = GOLDEN / f"{case}.Corefile"
    if UPDATE:
        golden.write_text(text)
    assert text == golden.read_text(), f"Corefile for {case} differs from {golden}"


def test_corefile_default_has_every_required_plugin_in_order():
    text = renderer({}).render("Corefile.j2")
    order = ["errors", "health {", "lameduck 5s", "ready",
             "kubernetes cluster.local in-addr.arpa ip6.arpa {", "pods insecure",
             "fallthrough in-addr.arpa ip6.arpa", "prometheus :9153",
             "forward . /etc/resolv.conf", "cache 30", "loop", "reload", "loadbalance"]
    positions = [text.index(word) for word in order]
    assert positions == sorted(positions)
    assert "autopath" not in text and "endpoint_pod_names" not in text


def test_corefile_follows_the_cluster_domain():
    text = renderer({}, networking={"clusterDomain": "k8s.example"}).render("Corefile.j2")
    assert "kubernetes k8s.example in-addr.arpa ip6.arpa {" in text


def test_autopath_without_pods_verified_is_refused():
    for pods in ("insecure", "disabled"):
        with pytest.raises(SpecError) as err:
            parse({"metadata": {"name": "demo"}, "spec": {"dns": {"autopath": True, "pods": pods}}})
        assert "spec.dns" in str(err.value) and "autopath @kubernetes needs pods: verified" in str(err.value)


def test_cluster_dns_outside_service_cidr_is_refused():
    with pytest.raises(SpecError) as err:
        complete(parse({"metadata": {"name": "demo"},
                        "spec": {"networking": {"serviceCIDR": "10.96.0.0/16"},
                                 "dns": {"clusterDNS": "10.97.0.10"}}}))
    assert "spec.dns.clusterDNS: 10.97.0.10 is outside serviceCIDR 10.96.0.0/16" in str(err.value)


def objects(dns: dict | None = None, **spec) -> dict[str, dict]:
    r = renderer(dns or {}, **spec)
    corefile = r.render("Corefile.j2")
    docs = yaml.safe_load(r.render("coredns.yaml.j2", coredns_corefile=corefile))
    return {d["kind"]: d for d in docs}, corefile


@pytest.mark.parametrize("version", ["1.35.0", "1.33.4"])
def test_objects_validate_for_the_specs_version(version):
    objs, _ = objects(kubernetesVersion=version)
    assert set(objs) == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap",
                         "Deployment", "PodDisruptionBudget", "Service"}
    for obj in objs.values():
        validate_object(obj, version)


def test_objects_carry_the_spec():
    objs, corefile = objects({"replicas": 3}, networking={"serviceCIDR": "10.100.0.0/16"})
    assert objs["ConfigMap"]["data"]["Corefile"] == corefile
    svc = objs["Service"]
    assert svc["spec"]["clusterIP"] == "10.100.0.10"  # 10th address = kubelet's clusterDNS
    assert {(p["port"], p["protocol"]) for p in svc["spec"]["ports"]} == {(53, "UDP"), (53, "TCP"), (9153, "TCP")}
    dep = objs["Deployment"]["spec"]
    assert dep["replicas"] == 3


def test_deployment_hardening_and_availability():
    objs, _ = objects()
    dep = objs["Deployment"]["spec"]
    assert dep["replicas"] == 2
    pod = dep["template"]["spec"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    assert anti["labelSelector"]["matchLabels"] == dep["selector"]["matchLabels"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    c = pod["containers"][0]
    assert c["image"] == f"registry.k8s.io/coredns/coredns:v{COREDNS.version()}"
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}
    assert objs["PodDisruptionBudget"]["spec"]["selector"] == dep["selector"]
    assert objs["Service"]["spec"]["selector"] == dep["selector"]["matchLabels"]


def test_rbac_is_list_watch_on_what_coredns_reads():
    objs, _ = objects()
    granted = {(g, r): set(rule["verbs"]) for rule in objs["ClusterRole"]["rules"]
               for g in rule["apiGroups"] for r in rule["resources"]}
    assert granted == {("", "services"): {"list", "watch"}, ("", "pods"): {"list", "watch"},
                       ("", "namespaces"): {"list", "watch"},
                       ("discovery.k8s.io", "endpointslices"): {"list", "watch"}}
    subject = objs["ClusterRoleBinding"]["subjects"][0]
    assert (subject["name"], subject["namespace"]) == ("coredns", "kube-system")
    assert objs["Deployment"]["spec"]["template"]["spec"]["serviceAccountName"] == "coredns"


def test_corefile_change_rolls_the_pods():
    a, _ = objects()
    b, _ = objects({"cacheTTL": 60})
    key = "kpyops.io/corefile-hash"
    ha = a["Deployment"]["spec"]["template"]["metadata"]["annotations"][key]
    hb = b["Deployment"]["spec"]["template"]["metadata"]["annotations"][key]
    assert ha != hb
