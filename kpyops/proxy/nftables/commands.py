"""Applying transactions: ``nft -f -`` (full syncs, and partial ones it must write), a
netlink batch (partial syncs), and ``nft -j list`` to read back."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence

from kpyops.proxy.dataplane import DataplaneError
from kpyops.proxy.nftables import netlink
from kpyops.proxy.nftables.encode import Unsupported
from kpyops.proxy.nftables.transaction import Transaction


class NftCommands:
    """The ``nft`` tool (nftables >= 1.0.1: kube-proxy's floor too)."""

    def __init__(self, binary: str = "nft") -> None:
        self.binary = binary

    def _run(self, args: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(
                [self.binary, *args], input=stdin, capture_output=True, text=True, check=False
            )
        except FileNotFoundError as err:
            raise DataplaneError(f"{self.binary} is not installed (Debian: nftables)") from err

    def apply(self, text: str) -> None:
        """Run ``text`` as one transaction (``nft -f -``): all of it happens, or none."""
        proc = self._run(["-f", "-"], stdin=text)
        if proc.returncode != 0:
            raise DataplaneError(f"nft -f failed: {_first_lines(proc.stderr)}")

    def apply_transaction(self, tx: Transaction) -> bool:
        """Apply a partial sync's transaction as one netlink batch (True), or with ``nft -f``
        if one of its rules has a shape the encoder does not know (False)."""
        try:
            batch = tx.batch()
        except Unsupported:
            self.apply(tx.text())
            return False
        try:
            netlink.send_batch(batch.framed())
        except OSError as err:
            raise DataplaneError(f"nf_tables refused a partial sync: {err}") from err
        return True

    def list_json(self, *what: str) -> list[dict] | None:
        """The objects of ``nft -j list WHAT...``, or None if it names nothing that exists."""
        proc = self._run(["-j", "list", *what])
        if proc.returncode != 0:
            if "No such file or directory" in proc.stderr:
                return None
            raise DataplaneError(f"nft list {' '.join(what)} failed: {_first_lines(proc.stderr)}")
        return json.loads(proc.stdout or '{"nftables": []}')["nftables"]

    def delete_table(self, family: str, table: str) -> bool:
        """Delete one table; False if it did not exist."""
        proc = self._run(["delete", "table", family, table])
        if proc.returncode == 0:
            return True
        if "No such file or directory" in proc.stderr:
            return False
        raise DataplaneError(f"nft delete table {family} {table} failed: {proc.stderr.strip()}")


def _first_lines(stderr: str, count: int = 6) -> str:
    """nft prints the failing line and a caret line per error: keep the first few."""
    return "\n".join(stderr.strip().splitlines()[:count])
