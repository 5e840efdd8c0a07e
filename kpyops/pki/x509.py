"""X.509 primitives on top of ``cryptography``: keys, CAs, leaf certificates, inspection."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

USAGES = {
    "server": ExtendedKeyUsageOID.SERVER_AUTH,
    "client": ExtendedKeyUsageOID.CLIENT_AUTH,
}
# Backdate notBefore a little so that hosts with a slightly slow clock accept new certs.
CLOCK_SKEW = dt.timedelta(minutes=5)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_key(key_type: str = "rsa", size: int = 2048) -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=size)
    if key_type == "ecdsa":
        curve = {256: ec.SECP256R1(), 384: ec.SECP384R1()}[size]
        return ec.generate_private_key(curve)
    raise ValueError(f"unknown key type {key_type!r}: use rsa or ecdsa")


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_key(path: Path) -> PrivateKey:
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def write_public(path: Path, data: bytes) -> None:
    """Write a world-readable file (0644), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Subject:
    cn: str
    orgs: tuple[str, ...] = ()

    def name(self) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in self.orgs]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, self.cn))
        return x509.Name(attrs)


@dataclass(frozen=True)
class Sans:
    dns: frozenset[str] = field(default_factory=frozenset)
    ips: frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address] = field(
        default_factory=frozenset
    )

    @classmethod
    def of(cls, dns=(), ips=()) -> Sans:
        return cls(frozenset(dns), frozenset(ipaddress.ip_address(str(i)) for i in ips))

    @classmethod
    def from_cert(cls, cert: x509.Certificate) -> Sans:
        try:
            ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return cls()
        return cls(
            frozenset(ext.get_values_for_type(x509.DNSName)),
            frozenset(ext.get_values_for_type(x509.IPAddress)),
        )

    def extension(self) -> x509.SubjectAlternativeName:
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in sorted(self.dns)]
        names += [x509.IPAddress(i) for i in sorted(self.ips, key=lambda a: (a.version, a))]
        return x509.SubjectAlternativeName(names)

    def __bool__(self) -> bool:
        return bool(self.dns or self.ips)

    def describe(self) -> list[str]:
        return sorted(self.dns) + sorted(str(i) for i in self.ips)


def _serial() -> int:
    return x509.random_serial_number()


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """Signature and key encipherment; a CA also signs certificates and CRLs."""
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=True,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca,
        crl_sign=ca, encipher_only=False, decipher_only=False,
    )


def make_ca(key: PrivateKey, cn: str, days: int, now: dt.datetime | None = None) -> x509.Certificate:
    now = now or utcnow()
    name = Subject(cn).name()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )


def issue(
    *,
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    key: PrivateKey,
    subject: Subject,
    usages: tuple[str, ...],
    sans: Sans,
    days: float,
    now: dt.datetime | None = None,
    not_before: dt.datetime | None = None,
) -> x509.Certificate:
    """Sign a leaf certificate for ``key`` with the CA."""
    now = now or utcnow()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject.name())
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(not_before or (now - CLOCK_SKEW))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([USAGES[u] for u in usages]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(sans.extension(), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def usages_of(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return ()
    names = {v: k for k, v in USAGES.items()}
    return tuple(sorted(names[o] for o in eku if o in names))


def subject_of(cert: x509.Certificate) -> Subject:
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return Subject(cn[0].value if cn else "", tuple(o.value for o in orgs))


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def signed_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, Exception):
        return False
    return True


def same_public_key(cert: x509.Certificate, key: PrivateKey) -> bool:
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return cert.public_key().public_bytes(enc, pub) == key.public_key().public_bytes(enc, pub)


def life_left(cert: x509.Certificate, now: dt.datetime | None = None) -> float:
    """Fraction of the validity period still ahead (1.0 fresh, 0.0 or less expired)."""
    now = now or utcnow()
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    total = (end - start).total_seconds()
    return (end - now).total_seconds() / total if total > 0 else 0.0
