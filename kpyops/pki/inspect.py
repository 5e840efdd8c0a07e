"""Read what a PKI folder holds: every certificate with its subject, issuer and expiry."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from kpyops.pki import x509 as px


@dataclass(frozen=True)
class CertInfo:
    name: str  # path relative to the folder, without .crt
    subject: str
    issuer: str
    is_ca: bool
    not_after: dt.datetime
    days_left: float
    life_left: float
    fingerprint: str
    sans: tuple[str, ...]


def list_certs(root: Path, now: dt.datetime | None = None) -> list[CertInfo]:
    now = now or px.utcnow()
    out = []
    for path in sorted(root.rglob("*.crt")):
        cert = px.load_cert(path)
        out.append(
            CertInfo(
                name=str(path.relative_to(root).with_suffix("")),
                subject=cert.subject.rfc4514_string(),
                issuer=cert.issuer.rfc4514_string(),
                is_ca=px.is_ca(cert),
                not_after=cert.not_valid_after_utc,
                days_left=(cert.not_valid_after_utc - now).total_seconds() / 86400,
                life_left=px.life_left(cert, now),
                fingerprint=px.fingerprint(cert),
                sans=tuple(px.Sans.from_cert(cert).describe()),
            )
        )
    return out
