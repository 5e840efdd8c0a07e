"""Running the kernel tools (ipset, iptables) the IPVS dataplane drives, optionally in a netns."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from kpyops.proxy.dataplane import DataplaneError


class ToolRunner:
    """Runs a command, in network namespace ``netns`` if given; raises DataplaneError."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self.calls: list[tuple[str, ...]] = []  # every command run, for tests and metrics

    def argv(self, args: Sequence[str]) -> list[str]:
        if self.netns:
            return ["ip", "netns", "exec", self.netns, *args]
        return list(args)

    def run(self, args: Sequence[str], stdin: str | None = None, check: bool = True) -> str:
        self.calls.append(tuple(args))
        proc = subprocess.run(
            self.argv(args), input=stdin, capture_output=True, text=True, check=False
        )
        if check and proc.returncode != 0:
            detail = proc.stderr.strip() or proc.stdout.strip()
            raise DataplaneError(f"{' '.join(args[:3])} failed ({proc.returncode}): {detail}")
        return proc.stdout

    def ok(self, args: Sequence[str]) -> bool:
        """True if the command exits 0 (for checks such as ``iptables -C``)."""
        self.calls.append(tuple(args))
        return subprocess.run(self.argv(args), capture_output=True, check=False).returncode == 0
