"""The per-cluster SSH key pair, made with cryptography and kept in the state store."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from kpyops.state.base import SSH_KEY, StateStore


def ensure_ssh_key(store: StateStore, cluster: str) -> str:
    """Create the cluster's key pair once; return the public key in OpenSSH form."""
    if not store.exists(cluster, SSH_KEY):
        key = ed25519.Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        store.write(cluster, SSH_KEY, private, secret=True)
        store.write(cluster, SSH_KEY + ".pub", public + f" kpyops-{cluster}\n".encode())
    return store.read_text(cluster, SSH_KEY + ".pub").strip()
