"""What the control_plane role writes, rendered from specs through its own templates."""

from __future__ import annotations

import base64

import pytest
import yaml
from k8sref import schema_version, split_flags, unknown_flags, validate_object
from rolerender import Inventory, RoleRenderer

COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
KEY = base64.b64encode(b"k" * 32).decode()


def spec(**over) -> dict:
    s = {"metadata": {"name": "demo"}, "spec": {"controlPlane": {"count": 3}}}
    s["spec"].update(over)
    return s


def renderer(s: dict | None = None, index: int = 0) -> RoleRenderer:
    inv = Inventory(s or spec())
    return RoleRenderer(
        "control_plane", inv, inv.host("kube_control_plane", index),
        {"control_plane_encryption_key": KEY},
    )


def manifest(r: RoleRenderer, component: str) -> dict:
    return yaml.safe_load(r.render(f"{component}.yaml.j2", control_plane_config_hash="h"))


def flags_of(pod: dict) -> dict[str, str]:
    command = pod["spec"]["containers"][0]["command"]
    assert command[0] == pod["metadata"]["name"]
    return split_flags(command)


@pytest.fixture(scope="module")
def default():
    r = renderer()
    return r, {c: manifest(r, c) for c in COMPONENTS}


@pytest.mark.parametrize("version", ["1.35.0", "1.33.4"])
@pytest.mark.parametrize("component", COMPONENTS)
def test_manifests_validate_and_use_only_known_flags(component, version):
    r = renderer(spec(kubernetesVersion=version))
    pod = manifest(r, component)
    validate_object(pod, version)
    assert unknown_flags(component, flags_of(pod)) == []
    image = pod["spec"]["containers"][0]["image"]
    assert image == f"registry.k8s.io/{component}:v{version}"


def test_schema_version_is_the_specs_when_shipped():
    """kubernetes-validate ships 1.35 (the default spec version): no substitution there."""
    assert schema_version("1.35.0") == "1.35.0"
    assert schema_version("1.35.2") == "1.35.0"
    newest = schema_version("1.99.0")
    assert newest.startswith("1.") and newest != "1.99.0"


def test_cis_control_plane_flags(default):
    """Each CIS 1.2.x / 1.3.x / 1.4.x check an installer controls, on the rendered manifests."""
    _, pods = default
    a = flags_of(pods["kube-apiserver"])
    cm = flags_of(pods["kube-controller-manager"])
    s = flags_of(pods["kube-scheduler"])
    plugins = a["enable-admission-plugins"].split(",")
    checks = {
        "1.2.1 anonymous limited to health paths (AuthenticationConfiguration)": "authentication-config" in a and "anonymous-auth" not in a,
        "1.2.2 no token auth file": "token-auth-file" not in a,
        "1.2.3 DenyServiceExternalIPs": "DenyServiceExternalIPs" in plugins,
        "1.2.4 kubelet client cert and key": {"kubelet-client-certificate", "kubelet-client-key"} <= a.keys(),
        "1.2.5 kubelet certificate authority": a.get("kubelet-certificate-authority") == "/etc/kubernetes/pki/ca.crt",
        "1.2.6-8 authorization Node,RBAC": a["authorization-mode"] == "Node,RBAC",
        "1.2.9 EventRateLimit with config": "EventRateLimit" in plugins and "admission-control-config-file" in a,
        "1.2.10 no AlwaysAdmit": "AlwaysAdmit" not in plugins,
        "1.2.11 AlwaysPullImages": "AlwaysPullImages" in plugins,
        "1.2.12-13 ServiceAccount, NamespaceLifecycle not disabled": "disable-admission-plugins" not in a,
        "1.2.14 NodeRestriction": "NodeRestriction" in plugins,
        "1.2.15 profiling off": a["profiling"] == "false",
        "1.2.16 audit log path": a["audit-log-path"].startswith("/var/log/kubernetes/audit/"),
        "1.2.17 audit maxage >= 30": int(a["audit-log-maxage"]) >= 30,
        "1.2.18 audit maxbackup >= 10": int(a["audit-log-maxbackup"]) >= 10,
        "1.2.19 audit maxsize >= 100": int(a["audit-log-maxsize"]) >= 100,
        "1.2.20 request timeout": a["request-timeout"] == "60s",
        "1.2.21 service account lookup": a["service-account-lookup"] == "true",
        "1.2.22 service account key file": a["service-account-key-file"].endswith("sa.pub"),
        "1.2.23 etcd cert and key": {"etcd-certfile", "etcd-keyfile"} <= a.keys(),
        "1.2.24 tls cert and key": {"tls-cert-file", "tls-private-key-file"} <= a.keys(),
        "1.2.25 client CA": a["client-ca-file"] == "/etc/kubernetes/pki/ca.crt",
        "1.2.26 etcd CA": a["etcd-cafile"] == "/etc/kubernetes/pki/etcd/ca.crt",
        "1.2.27 encryption provider config": "encryption-provider-config" in a,
        "1.2.29 strong ciphers only": all("ECDHE" in c and ("GCM" in c or "CHACHA20" in c) for c in a["tls-cipher-suites"].split(",")),
        "1.2.30 no token expiration extension": a["service-account-extend-token-expiration"] == "false",
        "TLS 1.2 minimum": a["tls-min-version"] == "VersionTLS12",
        "3.2.1 audit policy": "audit-policy-file" in a,
        "1.3.1 terminated pod gc threshold": int(cm["terminated-pod-gc-threshold"]) > 0,
        "1.3.2 kcm profiling off": cm["profiling"] == "false",
        "1.3.3 service account credentials": cm["use-service-account-credentials"] == "true",
        "1.3.4 sa private key": cm["service-account-private-key-file"].endswith("sa.key"),
        "1.3.5 root CA": cm["root-ca-file"] == "/etc/kubernetes/pki/ca.crt",
        "1.3.6 RotateKubeletServerCertificate not disabled": "RotateKubeletServerCertificate=false" not in cm.get("feature-gates", ""),
        "1.3.7 kcm bind 127.0.0.1": cm["bind-address"] == "127.0.0.1",
        "1.4.1 scheduler profiling off": s["profiling"] == "false",
        "1.4.2 scheduler bind 127.0.0.1": s["bind-address"] == "127.0.0.1",
    }
    failed = [name for name, ok in checks.items() if not ok]
    assert failed == []


def test_etcd_servers_are_every_etcd_member_over_tls(default):
    r, pods = default
    a = flags_of(pods["kube-apiserver"])
    inv = r.variables["hostvars"]
    want = ",".join(f"https://{inv[h]['kpyops_address']}:2379" for h in r.variables["groups"]["etcd"])
    assert a["etcd-servers"] == want and want.count("https://") == 3


def test_each_control_plane_advertises_its_own_address():
    for i in range(3):
        r = renderer(index=i)
        a = flags_of(manifest(r, "kube-apiserver"))
        assert a["advertise-address"] == str(r.variables["kpyops_address"])


def test_older_versions_turn_anonymous_off_and_probe_tcp():
    pod = manifest(renderer(spec(kubernetesVersion="1.33.4")), "kube-apiserver")
    a = flags_of(pod)
    assert a["anonymous-auth"] == "false" and "authentication-config" not in a
    assert "tcpSocket" in pod["spec"]["containers"][0]["livenessProbe"]


def test_extra_args_add_and_override_one_component_only():
    base = renderer()
    s = spec(controlPlane={"count": 3, "extraArgs": {
        "kube-apiserver": {"max-requests-inflight": "800", "request-timeout": "90s"}}})
    changed = renderer(s)
    a = flags_of(manifest(changed, "kube-apiserver"))
    assert a["max-requests-inflight"] == "800" and a["request-timeout"] == "90s"
    for c in COMPONENTS:
        same = base.render(f"{c}.yaml.j2", control_plane_config_hash="h") == changed.render(
            f"{c}.yaml.j2", control_plane_config_hash="h")
        assert same == (c != "kube-apiserver"), c


def test_unknown_extra_flag_is_caught_by_the_reference_check():
    s = spec(controlPlane={"count": 3, "extraArgs": {"kube-scheduler": {"no-such-flag": "1"}}})
    assert unknown_flags("kube-scheduler", flags_of(manifest(renderer(s), "kube-scheduler"))) == ["no-such-flag"]


def test_encryption_config_uses_secretbox_then_identity():
    r = renderer()
    doc = yaml.safe_load(r.render("encryption-config.yaml.j2"))
    assert doc["kind"] == "EncryptionConfiguration" and doc["apiVersion"] == "apiserver.config.k8s.io/v1"
    providers = doc["resources"][0]["providers"]
    assert list(providers[0]) == ["secretbox"] and providers[-1] == {"identity": {}}
    key = providers[0]["secretbox"]["keys"][0]["secret"]
    assert key == KEY and len(base64.b64decode(key)) == 32


def test_authentication_config_limits_anonymous_to_health_paths():
    doc = yaml.safe_load(renderer().render("authentication-config.yaml.j2"))
    assert doc["kind"] == "AuthenticationConfiguration"
    assert doc["anonymous"]["enabled"] is True
    assert [c["path"] for c in doc["anonymous"]["conditions"]] == ["/livez", "/readyz", "/healthz"]


def test_admission_and_event_rate_limit_config():
    r = renderer()
    adm = yaml.safe_load(r.render("admission-config.yaml.j2"))
    assert adm["plugins"][0]["name"] == "EventRateLimit"
    assert adm["plugins"][0]["path"] == "/etc/kubernetes/admission/eventratelimit.yaml"
    erl = yaml.safe_load(r.render("eventratelimit.yaml.j2"))
    assert erl["kind"] == "Configuration"
    assert {lim["type"] for lim in erl["limits"]} == {"Server", "Namespace", "User"}
    assert all(lim["qps"] > 0 and lim["burst"] >= lim["qps"] for lim in erl["limits"])


def test_audit_policy_keeps_secret_content_out_and_logs_exec():
    """CIS 3.2.2: secrets, configmaps, token reviews at Metadata; exec/port-forward logged."""
    doc = yaml.safe_load(renderer().render("audit-policy.yaml.j2"))
    assert doc["apiVersion"] == "audit.k8s.io/v1" and doc["kind"] == "Policy"

    def level_for(group: str, resource: str, verb: str = "get") -> str:
        for rule in doc["rules"]:
            if "nonResourceURLs" in rule or "users" in rule or "userGroups" in rule:
                continue
            if "verbs" in rule and verb not in rule["verbs"]:
                continue
            if "resources" not in rule:
                return rule["level"]
            for res in rule["resources"]:
                if res.get("group") == group and ("resources" not in res or resource in res["resources"]):
                    return rule["level"]
        raise AssertionError("no rule")

    assert level_for("", "secrets", "update") == "Metadata"
    assert level_for("", "configmaps") == "Metadata"
    assert level_for("authentication.k8s.io", "tokenreviews", "create") == "Metadata"
    assert level_for("", "pods/exec", "create") == "Metadata"
    assert level_for("", "pods/portforward", "create") == "Metadata"
    assert level_for("apps", "deployments", "patch") == "Request"
    assert doc["rules"][-1] == {"level": "Metadata"}


@pytest.mark.parametrize("kc", [
    {"file": "controller-manager.conf", "user": "system:kube-controller-manager", "cert": "controller-manager"},
    {"file": "scheduler.conf", "user": "system:kube-scheduler", "cert": "scheduler"},
    {"file": "admin.conf", "user": "kubernetes-admin", "cert": "admin"},
])
def test_kubeconfigs_point_at_local_api_with_pki_files(kc):
    doc = yaml.safe_load(renderer().task_content(
        "config.yml", "Config | Write the kubeconfigs of controller-manager, scheduler and admin", item=kc))
    cluster = doc["clusters"][0]["cluster"]
    assert cluster["server"] == "https://127.0.0.1:6443"
    assert cluster["certificate-authority"] == "/etc/kubernetes/pki/ca.crt"
    user = doc["users"][0]["user"]
    assert user == {"client-certificate": f"/etc/kubernetes/pki/{kc['cert']}.crt",
                    "client-key": f"/etc/kubernetes/pki/{kc['cert']}.key"}
    assert doc["current-context"] == doc["contexts"][0]["name"]


def test_kubeconfig_files_are_the_ones_the_components_read(default):
    r, pods = default
    names = {k["file"] for k in r.var("__control_plane_kubeconfigs")}
    assert flags_of(pods["kube-controller-manager"])["kubeconfig"] == "/etc/kubernetes/controller-manager.conf"
    assert flags_of(pods["kube-scheduler"])["kubeconfig"] == "/etc/kubernetes/scheduler.conf"
    assert {"controller-manager.conf", "scheduler.conf", "admin.conf"} == names


def test_every_file_a_flag_names_is_mounted(default):
    _, pods = default
    for c, pod in pods.items():
        mounts = [m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]]
        for name, value in flags_of(pod).items():
            if value.startswith("/"):
                assert any(value == m or value.startswith(m.rstrip("/") + "/") for m in mounts), (c, name, value)
