"""The proxy's kubeconfig loader, against a TLS server that demands a client certificate
(as kube-apiserver does of system:kube-proxy)."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kpyops.proxy.config import ConfigError
from kpyops.proxy.kubeconfig import in_cluster, load_kubeconfig
from kpyops.proxy.sources.api import ApiClient


def issue(cn: str, ca: tuple | None = None, server: bool = False):
    """A key and certificate named ``cn``, signed by ``ca`` (key, cert) or self-signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca[1].subject if ca else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca is None, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("kubernetes"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    cert = builder.sign(ca[0] if ca else key, hashes.SHA256())
    return key, cert


def pem(key, cert) -> tuple[bytes, bytes]:
    return (
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert.public_bytes(serialization.Encoding.PEM),
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """ca.crt, apiserver.crt/.key, kube-proxy.crt/.key and other-ca.crt in a folder."""
    d = tmp_path_factory.mktemp("pki")
    ca = issue("kubernetes-ca")
    for name, (key, cert) in {
        "ca": ca,
        "apiserver": issue("kube-apiserver", ca, server=True),
        "kube-proxy": issue("system:kube-proxy", ca),
        "other-ca": issue("other-ca"),
    }.items():
        key_pem, cert_pem = pem(key, cert)
        (d / f"{name}.key").write_bytes(key_pem)
        (d / f"{name}.crt").write_bytes(cert_pem)
    return d


@pytest.fixture(scope="module")
def apiserver(pki):
    """https://127.0.0.1:PORT answering GETs with the client certificate's CN and the
    Authorization header; no client certificate, no TLS session."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            peer = self.connection.getpeercert()
            cn = dict(x[0] for x in peer["subject"])["commonName"]
            body = json.dumps({"cn": cn, "auth": self.headers.get("Authorization")}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "ca.crt"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def write_kubeconfig(path: Path, server: str, cluster: dict, user: dict) -> str:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "k1", "cluster": {"server": server, **cluster}}],
                "users": [{"name": "system:kube-proxy", "user": user}],
                "contexts": [
                    {"name": "p@k1", "context": {"cluster": "k1", "user": "system:kube-proxy"}}
                ],
                "current-context": "p@k1",
            }
        )
    )
    return str(path)


def test_client_certificate_files_as_the_role_writes_them(pki, apiserver, tmp_path):
    path = write_kubeconfig(
        tmp_path / "proxy.kubeconfig",
        apiserver + "/",
        {"certificate-authority": str(pki / "ca.crt")},
        {
            "client-certificate": str(pki / "kube-proxy.crt"),
            "client-key": str(pki / "kube-proxy.key"),
        },
    )
    client = ApiClient.from_kubeconfig(path)
    assert client.host == apiserver
    assert client.get_json("/api/v1/services", {}) == {"cn": "system:kube-proxy", "auth": None}


def test_relative_paths_are_relative_to_the_kubeconfig(pki, apiserver):
    path = write_kubeconfig(
        pki / "relative.kubeconfig",
        apiserver,
        {"certificate-authority": "ca.crt"},
        {"client-certificate": "kube-proxy.crt", "client-key": "kube-proxy.key"},
    )
    assert ApiClient.from_kubeconfig(path).get_json("/", {})["cn"] == "system:kube-proxy"


def test_embedded_data_and_tls_server_name(pki, apiserver, tmp_path):
    def b64(name):
        return base64.b64encode((pki / name).read_bytes()).decode()

    user = {
        "client-certificate-data": b64("kube-proxy.crt"),
        "client-key-data": b64("kube-proxy.key"),
    }
    server = apiserver.replace("127.0.0.1", "localhost")  # not in the certificate
    good = write_kubeconfig(
        tmp_path / "good",
        server,
        {"certificate-authority-data": b64("ca.crt"), "tls-server-name": "kubernetes"},
        user,
    )
    conn = load_kubeconfig(good)
    assert Path(conn.key_file).stat().st_mode & 0o777 == 0o600
    assert ApiClient.from_kubeconfig(good).get_json("/", {})["cn"] == "system:kube-proxy"
    bad = write_kubeconfig(
        tmp_path / "bad", server, {"certificate-authority-data": b64("ca.crt")}, user
    )
    with pytest.raises(urllib3.exceptions.SSLError):
        ApiClient.from_kubeconfig(bad).get_json("/", {})


def test_a_server_signed_by_another_ca_is_refused(pki, apiserver, tmp_path):
    path = write_kubeconfig(
        tmp_path / "k",
        apiserver,
        {"certificate-authority": str(pki / "other-ca.crt")},
        {
            "client-certificate": str(pki / "kube-proxy.crt"),
            "client-key": str(pki / "kube-proxy.key"),
        },
    )
    with pytest.raises(urllib3.exceptions.SSLError):
        ApiClient.from_kubeconfig(path).get_json("/", {})


def test_token_file_is_read_for_every_request(pki, apiserver, tmp_path):
    (tmp_path / "token").write_text("first\n")
    path = write_kubeconfig(
        tmp_path / "k",
        apiserver,
        {"certificate-authority": str(pki / "ca.crt")},
        {
            "tokenFile": "token",
            "client-certificate": str(pki / "kube-proxy.crt"),
            "client-key": str(pki / "kube-proxy.key"),
        },
    )
    client = ApiClient.from_kubeconfig(path)
    assert client.get_json("/", {})["auth"] == "Bearer first"
    (tmp_path / "token").write_text("rotated\n")
    assert client.get_json("/", {})["auth"] == "Bearer rotated"


@pytest.mark.parametrize(
    ("user", "field"),
    [
        ({"exec": {"command": "aws"}}, "users[system:kube-proxy].user.exec"),
        ({"auth-provider": {"name": "oidc"}}, "users[system:kube-proxy].user.auth-provider"),
        ({"client-key-data": "not base64!"}, "users[system:kube-proxy].user.client-key-data"),
    ],
)
def test_what_the_proxy_cannot_use_is_refused_by_name(tmp_path, user, field):
    path = write_kubeconfig(tmp_path / "k", "https://127.0.0.1:6443", {}, user)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {field}")):
        load_kubeconfig(path)


def test_a_missing_context_is_named(tmp_path):
    path = write_kubeconfig(tmp_path / "k", "https://127.0.0.1:6443", {}, {})
    with pytest.raises(ConfigError, match="no context named 'elsewhere'"):
        load_kubeconfig(path, context="elsewhere")


def test_in_cluster_settings():
    conn = in_cluster({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"})
    assert conn.server == "https://[fd00::1]:443"
    assert conn.token_file == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    assert conn.ca_file == "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    with pytest.raises(ConfigError, match="not a pod"):
        in_cluster({})
