"""The workstation's way in: the API server's address and a short-lived admin kubeconfig.

kops' ``export kubeconfig --admin``: a client certificate for ``kubernetes-admin`` (group
system:masters), signed on this machine with the cluster CA from the state store and valid
for a set time, never stored. Merging follows kubectl: the cluster, user and context named
after the cluster are replaced, every other entry is kept, and the current context becomes
this cluster's.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml

from kpyops.pki.x509 import (
    Sans,
    Subject,
    cert_pem,
    issue,
    key_pem,
    load_cert,
    load_key,
    new_key,
)
from kpyops.proxy.config import ConfigError
from kpyops.proxy.config import parse_duration as go_duration
from kpyops.spec.model import Cluster

ADMIN = Subject("kubernetes-admin", ("system:masters",))
DEFAULT_ADMIN_TTL = dt.timedelta(hours=18)  # kops' default for --admin
API_PORT = 6443


class KubeconfigError(RuntimeError):
    """The kubeconfig cannot be written or read; ``str()`` says which file and why."""


def parse_duration(text: str) -> dt.timedelta:
    """A Go duration as kops takes it: ``18h``, ``90m``, ``1h30m``, ``45s``."""
    try:
        return dt.timedelta(seconds=go_duration(text, "duration"))
    except ConfigError:
        raise ValueError(f"{text!r} is not a duration (examples: 18h, 90m, 1h30m)") from None


def api_server_url(cluster: Cluster, endpoint: str | None = None) -> str:
    """How a workstation reaches the API of a completed spec: the external load balancer
    when there is one (or ``endpoint``, a cloud's name for it), else the first control
    plane's address."""
    lb = cluster.spec.control_plane.api_load_balancer
    if lb.type == "external" and (endpoint or lb.address):
        return f"https://{endpoint or lb.address}:{lb.port}"
    if endpoint:
        return f"https://{endpoint}:{lb.port}"
    first = next(iter(cluster.spec.control_plane.hosts), None)
    if first is None or first.address is None:
        raise KubeconfigError("the spec names no control-plane address yet: apply it first")
    return f"https://{first.address}:{API_PORT}"


def admin_credential(pki: Path, ttl: dt.timedelta) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of a new admin client valid for ``ttl``, signed with the
    cluster CA in the ``pki`` folder."""
    if ttl <= dt.timedelta(0):
        raise ValueError("the admin credential must be valid for a positive time")
    key = new_key("ecdsa", 256)
    cert = issue(ca_cert=load_cert(pki / "ca.crt"), ca_key=load_key(pki / "ca.key"), key=key,
                 subject=ADMIN, usages=("client",), sans=Sans(), days=ttl / dt.timedelta(days=1))
    return cert_pem(cert), key_pem(key)


def kubeconfig(name: str, server: str, ca: bytes, cert: bytes, key: bytes) -> dict:
    """A kubeconfig with one cluster, user and context, all named after the cluster."""
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server,
                                                  "certificate-authority-data": b64(ca)}}],
        "users": [{"name": name, "user": {"client-certificate-data": b64(cert),
                                            "client-key-data": b64(key)}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
        "preferences": {},
    }


def merge(existing: dict, new: dict) -> dict:
    """``existing`` with ``new``'s entries replacing those of the same name, others kept;
    the current context becomes ``new``'s."""
    out = dict(existing) if existing else {"apiVersion": "v1", "kind": "Config", "preferences": {}}
    for section in ("clusters", "users", "contexts"):
        mine = {e["name"] for e in new.get(section, [])}
        kept = [e for e in out.get(section) or [] if isinstance(e, dict) and e.get("name") not in mine]
        out[section] = kept + list(new.get(section, []))
    out["current-context"] = new["current-context"]
    return out


def default_path() -> Path:
    """kubectl's: the first file of $KUBECONFIG, else ~/.kube/config."""
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), None)
    return Path(first) if first else Path.home() / ".kube" / "config"


def write_merged(path: Path, new: dict) -> None:
    """Merge ``new`` into the kubeconfig at ``path`` (made if missing), written atomically
    with mode 0600."""
    try:
        existing = yaml.safe_load(path.read_text()) if path.exists() else {}
    except (OSError, yaml.YAMLError) as err:
        raise KubeconfigError(f"{path}: cannot read it as a kubeconfig ({err}); nothing written") from None
    if existing is not None and not isinstance(existing, dict):
        raise KubeconfigError(f"{path}: is not a kubeconfig (not a mapping); nothing written")
    text = yaml.safe_dump(merge(existing or {}, new), sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def admin_files(pki: Path, ttl: dt.timedelta) -> Iterator[tuple[str, str, str]]:
    """(CA file, certificate file, key file) of a new short-lived admin credential, in a
    private temporary folder removed afterwards: for kpyops' own API calls."""
    cert, key = admin_credential(pki, ttl)
    with tempfile.TemporaryDirectory(prefix="kpyops-admin-") as d:  # mode 0700
        paths = []
        for fname, data in (("ca.crt", (pki / "ca.crt").read_bytes()), ("admin.crt", cert),
                            ("admin.key", key)):
            fd = os.open(Path(d, fname), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            paths.append(str(Path(d, fname)))
        yield paths[0], paths[1], paths[2]
