"""Running iptables, iptables-save and iptables-restore (or their ip6tables twins)."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Sequence

from kpyops.proxy.dataplane import DataplaneError

BACKENDS = ("system", "nft", "legacy")


class IptablesCommands:
    """The iptables tools of one IP family and backend; ``-w`` waits for the xtables lock.

    ``backend`` "system" runs ``iptables*`` (whatever the distribution's alternative points
    to); "nft" and "legacy" run ``iptables-nft*`` / ``iptables-legacy*``. Use the backend the
    node's other rules (kubelet, CNI) use: the two cannot see each other's rules.
    """

    def __init__(self, family: int = 4, backend: str = "system") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown iptables backend {backend!r} (one of {', '.join(BACKENDS)})")
        self.family = family
        self.backend = backend
        base = "iptables" if family == 4 else "ip6tables"
        if backend != "system":
            base = f"{base}-{backend}"
        self.iptables, self.save_bin, self.restore_bin = base, f"{base}-save", f"{base}-restore"

    @functools.cached_property
    def is_nft(self) -> bool:
        """True when these tools are the nf_tables flavour of iptables."""
        if self.backend != "system":
            return self.backend == "nft"
        return "nf_tables" in self._run([self.iptables, "-V"]).stdout

    def _run(self, args: Sequence[str], stdin: str | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)
        except FileNotFoundError as err:
            raise DataplaneError(f"{args[0]} is not installed") from err

    def restore(self, text: str) -> None:
        """Apply ``text`` with ``iptables-restore --noflush``; each table is one transaction."""
        proc = self._run([self.restore_bin, "-w", "--noflush"], stdin=text)
        if proc.returncode != 0:
            raise DataplaneError(f"{self.restore_bin} failed: {proc.stderr.strip()}")

    def save(self, table: str) -> str:
        """``iptables-save -t TABLE`` output."""
        proc = self._run([self.save_bin, "-t", table])
        if proc.returncode != 0:
            raise DataplaneError(f"{self.save_bin} -t {table} failed: {proc.stderr.strip()}")
        return proc.stdout

    def list_rules(self, table: str, chain: str) -> list[str] | None:
        """``iptables -S CHAIN`` lines ("-A CHAIN ..."), or None if the chain does not exist."""
        proc = self._run([self.iptables, "-w", "-t", table, "-S", chain])
        if proc.returncode != 0:
            return None
        return [line for line in proc.stdout.splitlines() if line.startswith("-A ")]

    def rule_exists(self, table: str, chain: str, args: Sequence[str]) -> bool:
        """``iptables -C``: does the rule exist (False also when the chain is missing)."""
        return self._run([self.iptables, "-w", "-t", table, "-C", chain, *args]).returncode == 0


def chains_in_save(save_output: str) -> set[str]:
    """Chain names declared in iptables-save output (":NAME POLICY [p:b]")."""
    return {line[1:].split(" ", 1)[0] for line in save_output.splitlines() if line.startswith(":")}
