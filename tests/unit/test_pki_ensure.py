"""kpyops.pki.ensure: what is issued, kept and renewed, and why (no hosts, real crypto)."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest

from kpyops.pki import x509 as px
from kpyops.pki.ensure import CaSpec, CertSpec, Settings, ensure_pki
from kpyops.pki.inspect import list_certs

CAS = [CaSpec("ca", "kubernetes-ca"), CaSpec("etcd/ca", "etcd-ca")]
# ECDSA keys keep the tests fast; the logic does not depend on the algorithm.
FAST = Settings(key_type="ecdsa", key_size=256)


def certs(extra_san: str | None = None) -> list[CertSpec]:
    sans = ["kubernetes", "kubernetes.default", "10.0.0.10"] + ([extra_san] if extra_san else [])
    return [
        CertSpec.from_dict({"name": "apiserver", "ca": "ca", "cn": "kube-apiserver",
                            "usages": ["server"], "sans": sans, "service_cidrs": ["10.96.0.0/12"]}),
        CertSpec.from_dict({"name": "admin", "ca": "ca", "cn": "kubernetes-admin",
                            "orgs": ["system:masters"], "usages": ["client"]}),
        CertSpec.from_dict({"name": "etcd/server-a", "ca": "etcd/ca", "cn": "a",
                            "usages": ["server", "client"], "dns": ["a", "localhost"],
                            "ips": ["10.0.0.10", "127.0.0.1"]}),
    ]


def files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_first_run_creates_everything_with_private_keys_0600(tmp_path):
    r = ensure_pki(tmp_path, CAS, certs(), settings=FAST)
    assert {(a.name, a.action) for a in r.actions} == {
        ("ca", "create"), ("etcd/ca", "create"), ("sa", "create"),
        ("apiserver", "issue"), ("admin", "issue"), ("etcd/server-a", "issue"),
    }
    for p in tmp_path.rglob("*.key"):
        assert p.stat().st_mode & 0o777 == 0o600, p
    for p in tmp_path.rglob("*.crt"):
        assert p.stat().st_mode & 0o777 == 0o644, p
    api = px.load_cert(tmp_path / "apiserver.crt")
    sans = px.Sans.from_cert(api)
    assert ipaddress.ip_address("10.96.0.1") in sans.ips  # first address of the service range
    assert "kubernetes.default" in sans.dns
    assert px.signed_by(api, px.load_cert(tmp_path / "ca.crt"))
    assert px.signed_by(px.load_cert(tmp_path / "etcd/server-a.crt"), px.load_cert(tmp_path / "etcd/ca.crt"))
    assert not px.signed_by(px.load_cert(tmp_path / "etcd/server-a.crt"), px.load_cert(tmp_path / "ca.crt"))
    assert px.subject_of(px.load_cert(tmp_path / "admin.crt")).orgs == ("system:masters",)


def test_second_run_changes_nothing_byte_for_byte(tmp_path):
    ensure_pki(tmp_path, CAS, certs(), settings=FAST)
    before = files(tmp_path)
    r = ensure_pki(tmp_path, CAS, certs(), settings=FAST)
    assert r.actions == []
    assert files(tmp_path) == before
    assert set(r.fingerprints) == {"ca", "etcd/ca", "apiserver", "admin", "etcd/server-a"}


def test_changed_sans_renew_only_that_certificate_and_keep_its_key(tmp_path):
    ensure_pki(tmp_path, CAS, certs(), settings=FAST)
    before = files(tmp_path)
    r = ensure_pki(tmp_path, CAS, certs(extra_san="api.example.com"), settings=FAST)
    assert [(a.name, a.action) for a in r.actions] == [("apiserver", "renew")]
    assert "api.example.com" in r.actions[0].reason
    after = files(tmp_path)
    assert [k for k in after if after[k] != before[k]] == ["apiserver.crt"]


def test_renewal_happens_under_a_third_of_life_left_not_before(tmp_path):
    now = px.utcnow()
    ensure_pki(tmp_path, CAS, certs(), settings=FAST, now=now)
    # 200 of 365 days later: 45% left -> kept
    r = ensure_pki(tmp_path, CAS, certs(), settings=FAST, now=now + dt.timedelta(days=200))
    assert r.actions == []
    # 250 days later: 31% left -> every leaf renewed, CAs kept
    later = now + dt.timedelta(days=250)
    r = ensure_pki(tmp_path, CAS, certs(), settings=FAST, now=later)
    assert sorted(a.name for a in r.actions) == ["admin", "apiserver", "etcd/server-a"]
    assert all(a.action == "renew" and "days left" in a.reason for a in r.actions)
    assert px.load_cert(tmp_path / "admin.crt").not_valid_after_utc > later + dt.timedelta(days=364)


def test_check_mode_reports_and_writes_nothing(tmp_path):
    r = ensure_pki(tmp_path, CAS, certs(), settings=FAST, check=True)
    assert r.changed and list(tmp_path.iterdir()) == []
    ensure_pki(tmp_path, CAS, certs(), settings=FAST)
    before = files(tmp_path)
    r = ensure_pki(tmp_path, CAS, certs(extra_san="x.example"), settings=FAST, check=True)
    assert [a.name for a in r.actions] == ["apiserver"]
    assert files(tmp_path) == before


def test_a_replaced_ca_reissues_its_leaves_only(tmp_path):
    ensure_pki(tmp_path, CAS, certs(), settings=FAST)
    (tmp_path / "etcd/ca.crt").unlink()
    (tmp_path / "etcd/ca.key").unlink()
    r = ensure_pki(tmp_path, CAS, certs(), settings=FAST)
    assert sorted((a.name, a.action) for a in r.actions) == [("etcd/ca", "create"), ("etcd/server-a", "issue")]


def test_force_renews_the_named_certificate(tmp_path):
    ensure_pki(tmp_path, CAS, certs(), settings=FAST)
    old = px.fingerprint(px.load_cert(tmp_path / "admin.crt"))
    r = ensure_pki(tmp_path, CAS, certs(), settings=FAST, force=frozenset({"admin"}))
    assert [(a.name, a.reason) for a in r.actions] == [("admin", "renewal requested")]
    assert px.fingerprint(px.load_cert(tmp_path / "admin.crt")) != old


def test_a_certificate_not_matching_its_key_is_reissued(tmp_path):
    ensure_pki(tmp_path, CAS, certs(), settings=FAST)
    (tmp_path / "admin.key").write_bytes((tmp_path / "apiserver.key").read_bytes())
    r = ensure_pki(tmp_path, CAS, certs(), settings=FAST)
    assert [(a.name, a.reason) for a in r.actions] == [("admin", "certificate does not match its key")]
    assert px.same_public_key(px.load_cert(tmp_path / "admin.crt"), px.load_key(tmp_path / "admin.key"))


def test_unknown_ca_is_an_error(tmp_path):
    bad = [CertSpec.from_dict({"name": "x", "ca": "nope", "cn": "x"})]
    with pytest.raises(ValueError, match="unknown CA"):
        ensure_pki(tmp_path, CAS, bad, settings=FAST)


def test_list_certs_reports_expiry_of_every_certificate(tmp_path):
    ensure_pki(tmp_path, CAS, certs(), settings=FAST)
    infos = {c.name: c for c in list_certs(tmp_path)}
    assert set(infos) == {"ca", "etcd/ca", "apiserver", "admin", "etcd/server-a"}
    assert infos["ca"].is_ca and infos["ca"].days_left > 3600
    assert 364 < infos["admin"].days_left <= 365
