"""`kpyops validate cluster` as a library: is the cluster one a user can deploy to?

kops' gate, read from the cluster's own API with a short-lived admin credential:

- every host of the inventory is a Node, and Ready;
- every control plane runs kube-apiserver, kube-controller-manager and kube-scheduler,
  Running and Ready, and every other kube-system pod is Ready;
- every etcd member answers /health (straight to the member, with the etcd
  healthcheck-client certificate, when the cloud lets this machine reach its hosts; else the
  API servers' own etcd check);
- CoreDNS answers and a Service is reachable through the proxy from every node: the probe
  DaemonSet (``kpyops-validate/probe``, kpyops' probe image) is Ready on every node, and a
  probe pod is Ready only when it resolves the probe Service's DNS name through CoreDNS and
  gets an answer from it through its node's proxy (the Service publishes not-ready pods, so
  the answer may come from any node's pod). validate applies the probe and leaves it there
  for the next run.

Each finding names one item; the cluster is valid when every finding is ok.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass

import urllib3

from kpyops.clouds import get_cloud
from kpyops.kubeconfig import admin_files, api_server_url
from kpyops.lifecycle import load_cluster
from kpyops.pki.renew import pki_dir
from kpyops.proxy.kubeconfig import Connection
from kpyops.proxy.sources.api import ApiClient, ApiError
from kpyops.render.inventory import spec_hosts
from kpyops.state.base import StateStore

PROBE_NAMESPACE = "kpyops-validate"
PROBE_NAME = "probe"
PROBE_PORT = 8080
CONTROL_PLANE_PODS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
FIELD_MANAGER = "kpyops"
ADMIN_TTL = dt.timedelta(hours=1)  # validate's own credential, never written to the store


@dataclass(frozen=True)
class Finding:
    item: str  # what was checked: "node NAME", "pod NS/NAME", "etcd NAME", "probe on NAME"
    ok: bool
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EtcdMember:
    name: str
    url: str  # https://ADDRESS:2379


@dataclass(frozen=True)
class Expected:
    """What the inventory says the cluster has."""

    nodes: tuple[str, ...]
    control_planes: tuple[str, ...]
    etcd: tuple[EtcdMember, ...]
    cluster_domain: str
    probe_image: str | None  # None: no registry serves the probe image to this cluster


def ready(obj: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in obj.get("status", {}).get("conditions") or [])


def _condition(obj: dict, kind: str = "Ready") -> str:
    for c in obj.get("status", {}).get("conditions") or []:
        if c.get("type") == kind:
            why = " ".join(x for x in (c.get("reason"), c.get("message")) if x)
            return f"{kind}={c.get('status')}" + (f" ({why})" if why else "")
    return f"no {kind} condition yet"


def check_nodes(nodes: list[dict], expected: Iterable[str]) -> list[Finding]:
    by_name = {n["metadata"]["name"]: n for n in nodes}
    out = []
    for name in expected:
        node = by_name.get(name)
        if node is None:
            out.append(Finding(f"node {name}", False, "not registered with the API"))
        else:
            out.append(Finding(f"node {name}", ready(node), _condition(node)))
    out += [Finding(f"node {n}", False, "a Node that is not in the inventory")
            for n in sorted(set(by_name) - set(expected))]
    return out


def check_kube_system(pods: list[dict], control_planes: Iterable[str]) -> list[Finding]:
    by_name = {p["metadata"]["name"]: p for p in pods}
    out = []
    wanted = [f"{c}-{h}" for h in control_planes for c in CONTROL_PLANE_PODS]
    for name in wanted:
        pod = by_name.get(name)
        if pod is None:
            out.append(Finding(f"pod kube-system/{name}", False, "not found"))
        else:
            phase = pod.get("status", {}).get("phase")
            out.append(Finding(f"pod kube-system/{name}", phase == "Running" and ready(pod),
                               f"{phase}, {_condition(pod)}"))
    for name, pod in sorted(by_name.items()):
        if name in wanted or pod.get("status", {}).get("phase") == "Succeeded":
            continue
        out.append(Finding(f"pod kube-system/{name}", ready(pod),
                           f"{pod.get('status', {}).get('phase')}, {_condition(pod)}"))
    return out


def check_probe(pods: list[dict], nodes: Iterable[str]) -> list[Finding]:
    """One Ready probe pod per node: DNS and a Service through the proxy work there."""
    by_node: dict[str, list[dict]] = {}
    for p in pods:
        by_node.setdefault(p.get("spec", {}).get("nodeName", ""), []).append(p)
    out = []
    for node in nodes:
        mine = by_node.get(node, [])
        if not mine:
            out.append(Finding(f"probe on {node}", False, "no probe pod scheduled there yet"))
            continue
        ok = any(ready(p) for p in mine)
        detail = ("resolves the probe Service through CoreDNS and reaches it through the proxy"
                  if ok else f"{mine[0]['metadata']['name']}: {_condition(mine[0])}")
        out.append(Finding(f"probe on {node}", ok, detail))
    return out


def probe_objects(image: str, cluster_domain: str) -> list[dict]:
    """The probe's Namespace, Service and DaemonSet."""
    labels = {"app.kubernetes.io/name": PROBE_NAME, "app.kubernetes.io/managed-by": "kpyops"}
    url = f"http://{PROBE_NAME}.{PROBE_NAMESPACE}.svc.{cluster_domain}:{PROBE_PORT}/healthz"
    field_env = lambda name, path: {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}  # noqa: E731
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PROBE_NAMESPACE, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted"}}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": PROBE_NAME, "namespace": PROBE_NAMESPACE, "labels": labels},
         "spec": {"selector": labels, "publishNotReadyAddresses": True,
                  "ports": [{"name": "http", "port": PROBE_PORT, "targetPort": PROBE_PORT}]}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet",
         "metadata": {"name": PROBE_NAME, "namespace": PROBE_NAMESPACE, "labels": labels},
         "spec": {
             "selector": {"matchLabels": labels},
             "template": {
                 "metadata": {"labels": labels},
                 "spec": {
                     "automountServiceAccountToken": False,
                     "tolerations": [{"operator": "Exists", "effect": "NoSchedule"}],
                     "securityContext": {"runAsNonRoot": True, "runAsUser": 65534,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{
                         "name": PROBE_NAME, "image": image, "args": ["serve", str(PROBE_PORT)],
                         "env": [field_env("POD_NAME", "metadata.name"),
                                 field_env("NODE_NAME", "spec.nodeName")],
                         "ports": [{"name": "http", "containerPort": PROBE_PORT}],
                         "readinessProbe": {"exec": {"command": ["/probe", "check", url]},
                                            "periodSeconds": 5, "timeoutSeconds": 5},
                         "resources": {"requests": {"cpu": "5m", "memory": "16Mi"},
                                       "limits": {"memory": "32Mi"}},
                         "securityContext": {"allowPrivilegeEscalation": False,
                                             "readOnlyRootFilesystem": True,
                                             "capabilities": {"drop": ["ALL"]}},
                     }],
                 },
             },
         }},
    ]


def _path(obj: dict) -> str:
    kind, name = obj["kind"], obj["metadata"]["name"]
    ns = obj["metadata"].get("namespace")
    group = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
    plural = {"Namespace": "namespaces", "Service": "services", "DaemonSet": "daemonsets"}[kind]
    return f"{group}/{'namespaces/' + ns + '/' if ns else ''}{plural}/{name}"


class Api:
    """The few calls validate makes, over kpyops' own API client."""

    def __init__(self, client: ApiClient):
        self.client = client

    def items(self, path: str, **params: str) -> list[dict]:
        return self.client.get_json(path, params, timeout=15).get("items") or []

    def get_text(self, path: str) -> str:
        resp = self.client.pool.request("GET", self.client.host + path, timeout=15, retries=False)
        return f"HTTP {resp.status}: {resp.data.decode(errors='replace').strip()[:200]}"

    def apply(self, obj: dict) -> None:
        """Server-side apply, kpyops the field manager."""
        resp = self.client.pool.request(
            "PATCH", f"{self.client.host}{_path(obj)}?fieldManager={FIELD_MANAGER}&force=true",
            body=json.dumps(obj).encode(),
            headers={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
            timeout=urllib3.Timeout(connect=10, read=30), retries=False)
        if resp.status not in (200, 201):
            raise ApiError(resp.status, resp.data.decode(errors="replace")[:300])


def check_etcd_direct(members: Iterable[EtcdMember], pool: urllib3.PoolManager) -> list[Finding]:
    out = []
    for m in members:
        try:
            resp = pool.request("GET", f"{m.url}/health", timeout=urllib3.Timeout(5), retries=False)
            body = json.loads(resp.data or b"{}")
            ok = resp.status == 200 and body.get("health") == "true"
            detail = "healthy" if ok else f"HTTP {resp.status}: {body}"
        except (urllib3.exceptions.HTTPError, ValueError) as err:
            ok, detail = False, f"does not answer: {err}"
        out.append(Finding(f"etcd {m.name}", ok, detail))
    return out


EtcdCheck = Callable[[], list[Finding]]


def validate_once(api: Api, expected: Expected, etcd: EtcdCheck | None) -> list[Finding]:
    """Every check once. ``etcd`` checks the members straight (None: through the API)."""
    try:
        findings = check_nodes(api.items("/api/v1/nodes"), expected.nodes)
        findings += check_kube_system(api.items("/api/v1/namespaces/kube-system/pods"),
                                      expected.control_planes)
        if etcd is not None:
            findings += etcd()
        else:
            said = api.get_text("/readyz/etcd")
            findings.append(Finding("etcd (as the API servers see it)", said == "HTTP 200: ok", said))
        if expected.probe_image is None:
            findings.append(Finding("probe", True, "not run: no registry serves kpyops' probe "
                                    "image to this cluster (the local cloud's does)"))
        else:
            for obj in probe_objects(expected.probe_image, expected.cluster_domain):
                api.apply(obj)
            pods = api.items(f"/api/v1/namespaces/{PROBE_NAMESPACE}/pods",
                             labelSelector=f"app.kubernetes.io/name={PROBE_NAME}")
            findings += check_probe(pods, expected.nodes)
    except (ApiError, urllib3.exceptions.HTTPError) as err:
        return [Finding("API server", False, f"{api.client.host}: {err}")]
    return findings


def validate(api: Api, expected: Expected, etcd: EtcdCheck | None, *,
             wait: float = 0, interval: float = 5, progress: Callable[[str], None] = lambda _m: None,
             clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
             ) -> list[Finding]:
    """The findings of the last round: the first in which all are ok, or the one at the
    end of ``wait`` seconds."""
    deadline = clock() + wait
    while True:
        findings = validate_once(api, expected, etcd)
        failing = [f for f in findings if not f.ok]
        if not failing or clock() >= deadline:
            return findings
        progress(f"{len(failing)} of {len(findings)} checks failing (first: {failing[0].item}: "
                 f"{failing[0].detail}); checking again until {wait:.0f}s have passed")
        sleep(min(interval, max(0.0, deadline - clock())))


@contextlib.contextmanager
def for_cluster(store: StateStore, name: str) -> Iterator[tuple[Api, Expected, EtcdCheck | None]]:
    """The API (as a short-lived admin), what the inventory expects, and the straight etcd
    check when the cloud lets this machine reach the hosts."""
    cluster = load_cluster(store, name)
    cloud = get_cloud(cluster.spec.cloud, store)
    hosts = cloud.inventory_hosts(cluster) if hasattr(cloud, "inventory_hosts") else spec_hosts(cluster)
    in_group = lambda g: tuple(h for h in hosts if g in h.groups)  # noqa: E731
    expected = Expected(
        nodes=tuple(h.name for h in hosts if {"kube_control_plane", "kube_node"} & set(h.groups)),
        control_planes=tuple(h.name for h in in_group("kube_control_plane")),
        etcd=tuple(EtcdMember(h.name, f"https://{h.address}:2379") for h in in_group("etcd")),
        cluster_domain=cluster.spec.networking.cluster_domain,
        probe_image=cloud.probe_image(cluster),
    )
    pki = pki_dir(store, name)
    server = api_server_url(cluster, cloud.api_endpoint(cluster))
    with admin_files(pki, ADMIN_TTL) as (ca, cert, key):
        client = ApiClient.from_connection(Connection(server=server, ca_file=ca, cert_file=cert,
                                                      key_file=key))
        etcd = None
        if cloud.capabilities.reaches_hosts and expected.etcd:
            pool = urllib3.PoolManager(
                cert_reqs="CERT_REQUIRED", ca_certs=str(pki / "etcd" / "ca.crt"),
                cert_file=str(pki / "etcd" / "healthcheck-client.crt"),
                key_file=str(pki / "etcd" / "healthcheck-client.key"))
            etcd = lambda: check_etcd_direct(expected.etcd, pool)  # noqa: E731
        yield Api(client), expected, etcd
