"""`kpyops certs check|renew` on a real local state store and a real PKI folder."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner

from kpyops.cli.certs import command as certs
from kpyops.cli.main import cli
from kpyops.pki import renew as pki_renew
from kpyops.pki import x509 as px
from kpyops.pki.ensure import CaSpec, CertSpec, Settings, ensure_pki

if "certs" not in cli.commands:
    cli.add_command(certs)

CAS = [CaSpec("ca", "kubernetes-ca"), CaSpec("etcd/ca", "etcd-ca")]
LEAVES = [
    CertSpec.from_dict({"name": "admin", "ca": "ca", "cn": "kubernetes-admin"}),
    CertSpec.from_dict({"name": "etcd/server-a", "ca": "etcd/ca", "cn": "a", "usages": ["server"],
                        "ips": ["127.0.0.1"]}),
]


@pytest.fixture
def state(tmp_path):
    pki = tmp_path / "clusters" / "demo" / "pki"
    ensure_pki(pki, CAS, LEAVES, settings=Settings(key_type="ecdsa", key_size=256))
    return tmp_path


def run(state, *args):
    return CliRunner().invoke(cli, ["--state", str(state), "certs", *args], catch_exceptions=False)


def shorten(state, name: str, days_left: int) -> None:
    """Re-issue a leaf so that it has only ``days_left`` days of a year left."""
    pki = state / "clusters" / "demo" / "pki"
    old = px.load_cert(pki / f"{name}.crt")
    now = px.utcnow()
    ca = "etcd/ca" if name.startswith("etcd/") else "ca"
    short = px.issue(ca_cert=px.load_cert(pki / f"{ca}.crt"), ca_key=px.load_key(pki / f"{ca}.key"),
                     key=px.load_key(pki / f"{name}.key"), subject=px.subject_of(old),
                     usages=px.usages_of(old), sans=px.Sans.from_cert(old), days=days_left,
                     now=now, not_before=now - dt.timedelta(days=365 - days_left))
    (pki / f"{name}.crt").write_bytes(px.cert_pem(short))


def test_check_lists_every_certificate_and_passes_when_none_expires_soon(state):
    r = run(state, "check", "demo")
    assert r.exit_code == 0, r.output
    for name in ("ca", "etcd/ca", "admin", "etcd/server-a"):
        assert any(line.startswith(name + " ") for line in r.output.splitlines()), name


def test_check_fails_under_30_days_and_names_the_certificate(state):
    shorten(state, "etcd/server-a", 12)
    r = run(state, "check", "demo")
    assert r.exit_code == 1
    assert "etcd/server-a" in r.output and "expires soon" in r.output
    data = json.loads(run(state, "check", "demo", "-o", "json").stdout)
    left = {d["name"]: d["daysLeft"] for d in data}
    assert 11 < left["etcd/server-a"] <= 12 and left["admin"] > 360


def test_check_of_a_cluster_without_pki_is_an_error(tmp_path):
    r = run(tmp_path, "check", "nope")
    assert r.exit_code == 1 and "no certificates" in r.output


def test_renew_picks_expiring_leaves_named_ones_or_all(state):
    shorten(state, "admin", 5)
    certs = pki_renew.list_certs(state / "clusters" / "demo" / "pki")
    assert pki_renew.to_renew(certs, (), False, 30) == ["admin"]
    assert pki_renew.to_renew(certs, ("etcd/server-a",), False, 30) == ["etcd/server-a"]
    assert pki_renew.to_renew(certs, (), True, 30) == ["admin", "etcd/server-a"]
    with pytest.raises(KeyError, match="no such leaf"):
        pki_renew.to_renew(certs, ("ca",), False, 30)
