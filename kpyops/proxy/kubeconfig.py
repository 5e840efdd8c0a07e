"""How to reach the API server: from a kubeconfig file or the in-cluster service account.

Reads what a node's proxy meets, as kubectl does: the current context's cluster (``server``,
``certificate-authority`` or ``-data``, ``insecure-skip-tls-verify``, ``tls-server-name``) and
user (``client-certificate``/``client-key`` or their ``-data``, ``token`` or ``tokenFile``).
Relative paths are relative to the kubeconfig's folder. Exec plugins, auth providers and basic
auth are refused by name. Kept small on purpose: the ``kubernetes`` package would bring some 25
distributions, several compiled, to every node for these few fields.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kpyops.proxy.config import ConfigError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class Connection:
    """The API server's address and the credentials to present to it (file paths)."""

    server: str
    ca_file: str | None = None
    verify: bool = True
    tls_server_name: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    # read again for every request: projected service account tokens are rotated
    token_file: str | None = None


def _named(items: Any, name: str, kind: str, file: str) -> dict:
    for i, item in enumerate(items or []):
        if isinstance(item, dict) and item.get("name") == name:
            body = item.get(kind)
            if not isinstance(body, dict):
                raise ConfigError(f"{kind}s[{i}].{kind}", "must be a mapping", file)
            return body
    raise ConfigError(f"{kind}s", f"no {kind} named {name!r}", file)


def _data_file(data: str, field: str, folder: list[str], file: str) -> str:
    """Write base64 ``data`` to a private file, as client libraries do; returns its path."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ConfigError(field, "is not valid base64", file) from err
    if not folder:
        folder.append(tempfile.mkdtemp(prefix="kpyops-kubeconfig-"))  # mode 0700
    path = Path(folder[0]) / field.rsplit(".", 1)[-1]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(raw)
    return str(path)


def _file_or_data(
    section: dict, key: str, where: str, base: Path, folder: list[str], file: str
) -> str | None:
    if section.get(f"{key}-data"):
        return _data_file(str(section[f"{key}-data"]), f"{where}.{key}-data", folder, file)
    if section.get(key):
        return str(base / str(section[key]))
    return None


def load_kubeconfig(path: str, context: str | None = None) -> Connection:
    """The connection of ``context`` (default: the current context) in the kubeconfig ``path``."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError("", f"cannot read the kubeconfig: {err}", path) from err
    if not isinstance(doc, dict):
        raise ConfigError("", "a kubeconfig is a mapping", path)
    name = context or doc.get("current-context")
    if not name:
        raise ConfigError("current-context", "is not set", path)
    ctx = _named(doc.get("contexts"), name, "context", path)
    cluster = _named(doc.get("clusters"), ctx.get("cluster"), "cluster", path)
    user = _named(doc.get("users"), ctx.get("user"), "user", path) if ctx.get("user") else {}
    for unsupported in ("exec", "auth-provider", "username", "password"):
        if unsupported in user:
            raise ConfigError(
                f"users[{ctx.get('user')}].user.{unsupported}",
                "is not supported by kpyops proxy (use a client certificate or a token)",
                path,
            )
    if not cluster.get("server"):
        raise ConfigError(f"clusters[{ctx.get('cluster')}].cluster.server", "is not set", path)
    base = Path(path).resolve().parent
    folder: list[str] = []
    cluster_at, user_at = (
        f"clusters[{ctx.get('cluster')}].cluster",
        f"users[{ctx.get('user')}].user",
    )
    token_file = user.get("tokenFile")
    return Connection(
        server=str(cluster["server"]).rstrip("/"),
        ca_file=_file_or_data(cluster, "certificate-authority", cluster_at, base, folder, path),
        verify=not cluster.get("insecure-skip-tls-verify", False),
        tls_server_name=cluster.get("tls-server-name") or None,
        cert_file=_file_or_data(user, "client-certificate", user_at, base, folder, path),
        key_file=_file_or_data(user, "client-key", user_at, base, folder, path),
        token=user.get("token") or None,
        token_file=str(base / token_file) if token_file and not user.get("token") else None,
    )


def in_cluster(
    environ: dict[str, str] | None = None, sa_dir: Path = SERVICE_ACCOUNT_DIR
) -> Connection:
    """The service account's connection, inside a pod."""
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConfigError(
            "clientConnection.kubeconfig",
            "is empty and this is not a pod (KUBERNETES_SERVICE_HOST/PORT unset)",
        )
    if ":" in host:
        host = f"[{host}]"
    return Connection(
        server=f"https://{host}:{port}",
        ca_file=str(sa_dir / "ca.crt"),
        token_file=str(sa_dir / "token"),
    )
