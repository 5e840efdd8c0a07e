"""Keep a PKI folder in the wanted state: issue what is missing, renew what is stale, keep the rest.

A certificate on disk is **kept** (same bytes, same fingerprint) unless one of these holds:
it is missing or unreadable, its key is missing or does not match, it is not signed by its
CA (the CA was replaced), its subject, usages or SANs differ from the wanted ones, or less
than ``renew_fraction`` of its validity period is left. CAs are created when missing and
never rotated automatically (that needs a trust roll-over); an expiring CA is a warning.

Layout (kubeadm's names): ``<name>.crt`` / ``<name>.key``; ``sa.key`` / ``sa.pub``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from kpyops.pki import x509 as px

RENEW_FRACTION = 1 / 3


@dataclass(frozen=True)
class CaSpec:
    name: str  # file stem, e.g. "ca" or "etcd/ca"
    cn: str


@dataclass(frozen=True)
class CertSpec:
    name: str
    ca: str
    cn: str
    orgs: tuple[str, ...] = ()
    usages: tuple[str, ...] = ("client",)
    sans: px.Sans = field(default_factory=px.Sans)

    @classmethod
    def from_dict(cls, d: dict) -> CertSpec:
        """From the module's input.

        ``sans`` mixes names and addresses (sorted out here); ``service_cidrs`` adds the first
        address of each range.
        """
        dns, ips = list(d.get("dns") or ()), list(d.get("ips") or ())
        for cidr in d.get("service_cidrs") or ():
            # The kubernetes Service takes the first address of each service range.
            ips.append(str(ipaddress.ip_network(str(cidr)).network_address + 1))
        for name in d.get("sans") or ():
            (ips if _is_ip(str(name)) else dns).append(str(name))
        return cls(
            name=d["name"],
            ca=d["ca"],
            cn=d["cn"],
            orgs=tuple(d.get("orgs") or ()),
            usages=tuple(sorted(d.get("usages") or ("client",))),
            sans=px.Sans.of(dns, ips),
        )


@dataclass(frozen=True)
class Action:
    name: str
    action: str  # "create" (CA/key), "issue", "renew"
    reason: str


@dataclass
class Settings:
    key_type: str = "rsa"
    key_size: int = 2048
    ca_days: int = 3650
    cert_days: int = 365
    renew_fraction: float = RENEW_FRACTION
    ca_warn_days: int = 365


@dataclass
class Result:
    actions: list[Action] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fingerprints: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.actions)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _paths(root: Path, name: str) -> tuple[Path, Path]:
    return root / f"{name}.crt", root / f"{name}.key"


def _read_pair(crt: Path, key: Path):
    cert = k = None
    with contextlib.suppress(OSError, ValueError):
        cert = px.load_cert(crt)
    with contextlib.suppress(OSError, ValueError, TypeError):
        k = px.load_key(key)
    return cert, k


def leaf_verdict(
    spec: CertSpec,
    cert,
    key,
    ca_cert,
    *,
    now: dt.datetime,
    renew_fraction: float,
) -> tuple[str, str] | None:
    """Why a leaf must be (re)issued, as (action, reason); None when the one on disk is good."""
    if key is None:
        return "issue", "key missing"
    if cert is None:
        return "issue", "certificate missing"
    if ca_cert is None or not px.signed_by(cert, ca_cert):
        return "issue", f"not signed by the current {spec.ca}"
    if not px.same_public_key(cert, key):
        return "issue", "certificate does not match its key"
    have = px.subject_of(cert)
    if (have.cn, tuple(sorted(have.orgs))) != (spec.cn, tuple(sorted(spec.orgs))):
        return "renew", f"subject {have.cn}/{','.join(have.orgs)} differs from the spec"
    if px.usages_of(cert) != tuple(sorted(spec.usages)):
        return "renew", "key usages differ from the spec"
    have_sans = px.Sans.from_cert(cert)
    if have_sans != spec.sans:
        added = sorted(set(spec.sans.describe()) - set(have_sans.describe()))
        removed = sorted(set(have_sans.describe()) - set(spec.sans.describe()))
        return "renew", f"SANs differ (add {added}, remove {removed})"
    left = px.life_left(cert, now)
    if left < renew_fraction:
        days = (cert.not_valid_after_utc - now).total_seconds() / 86400
        return "renew", f"{days:.1f} days left, under {renew_fraction:.0%} of its life"
    return None


def ensure_pki(
    root: Path,
    cas: list[CaSpec],
    certs: list[CertSpec],
    *,
    service_account: str | None = "sa",
    settings: Settings | None = None,
    check: bool = False,
    force: frozenset[str] = frozenset(),
    now: dt.datetime | None = None,
) -> Result:
    """Bring ``root`` to the wanted PKI. With ``check``, report what would change, write nothing.

    ``force`` names leaf certificates to renew whatever their state (``kpyops certs renew``).
    """
    settings = settings or Settings()
    now = now or px.utcnow()
    result = Result()
    ca_pairs: dict[str, tuple] = {}

    for ca in cas:
        crt, keyp = _paths(root, ca.name)
        cert, key = _read_pair(crt, keyp)
        if cert is not None and key is not None and px.same_public_key(cert, key) and px.is_ca(cert):
            days_left = (cert.not_valid_after_utc - now).days
            if days_left < settings.ca_warn_days:
                result.warnings.append(
                    f"CA {ca.name} expires in {days_left} days: plan a CA roll-over"
                )
        else:
            if crt.exists() or keyp.exists():
                reason = "CA certificate or key unreadable or mismatched"
            else:
                reason = "CA missing"
            result.actions.append(Action(ca.name, "create", reason))
            if not check:
                key = px.new_key(settings.key_type, settings.key_size)
                cert = px.make_ca(key, ca.cn, settings.ca_days, now)
                px.write_private(keyp, px.key_pem(key))
                px.write_public(crt, px.cert_pem(cert))
            else:
                cert = key = None
        ca_pairs[ca.name] = (cert, key)
        if cert is not None:
            result.fingerprints[ca.name] = px.fingerprint(cert)

    if service_account:
        keyp, pubp = root / f"{service_account}.key", root / f"{service_account}.pub"
        try:
            sa_key = px.load_key(keyp)
        except (OSError, ValueError, TypeError):
            sa_key = None
        if sa_key is None:
            result.actions.append(Action(service_account, "create", "service-account key missing"))
            if not check:
                sa_key = px.new_key("rsa", 2048)
                px.write_private(keyp, px.key_pem(sa_key))
        if sa_key is not None and (not pubp.exists() or pubp.read_bytes() != px.public_pem(sa_key)):
            if not any(a.name == service_account for a in result.actions):
                result.actions.append(Action(service_account, "create", "public key missing"))
            if not check:
                px.write_public(pubp, px.public_pem(sa_key))

    for spec in certs:
        if spec.ca not in ca_pairs:
            raise ValueError(f"certificate {spec.name} names unknown CA {spec.ca}")
        ca_cert, ca_key = ca_pairs[spec.ca]
        crt, keyp = _paths(root, spec.name)
        cert, key = _read_pair(crt, keyp)
        verdict = leaf_verdict(
            spec, cert, key, ca_cert, now=now, renew_fraction=settings.renew_fraction
        )
        if verdict is None and spec.name in force:
            verdict = ("renew", "renewal requested")
        if verdict is None:
            result.fingerprints[spec.name] = px.fingerprint(cert)
            continue
        result.actions.append(Action(spec.name, *verdict))
        if check:
            continue
        if key is None:
            key = px.new_key(settings.key_type, settings.key_size)
            px.write_private(keyp, px.key_pem(key))
        cert = px.issue(
            ca_cert=ca_cert,
            ca_key=ca_key,
            key=key,
            subject=px.Subject(spec.cn, spec.orgs),
            usages=spec.usages,
            sans=spec.sans,
            days=settings.cert_days,
            now=now,
        )
        px.write_public(crt, px.cert_pem(cert))
        result.fingerprints[spec.name] = px.fingerprint(cert)
    return result
