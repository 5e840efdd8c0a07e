"""Reading a running local cluster the way an operator would: kubectl on a control plane
(over SSH, with the admin kubeconfig), the processes' own command lines, etcd's health."""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"


def ssh_runner(state: Path, name: str) -> Callable[[str, str], str]:
    d = state / "clusters" / name
    addresses = {
        line.split()[0].split(",")[0]: line.split()[0].split(",")[1]
        for line in (d / "ssh/known_hosts").read_text().splitlines()
    }

    def run(host: str, command: str) -> str:
        return subprocess.run(
            ["ssh", "-i", str(d / "ssh/id_ed25519"), "-o", f"UserKnownHostsFile={d / 'ssh/known_hosts'}",
             "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"root@{addresses[host]}", command],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout

    return run


def kubectl_json(run, cp: str, *args: str) -> dict:
    return json.loads(run(cp, f"{KUBECTL} {' '.join(shlex.quote(a) for a in args)} -o json"))


def ready(obj: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in obj["status"].get("conditions", []))


def wait_for(what: str, check: Callable[[], object], timeout: float = 300, every: float = 3):
    """check() until it returns something true; fail with what it last said."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except subprocess.CalledProcessError as err:
            last = err.stderr
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {last!r})")


def process_args(run, host: str, program: str) -> list[str]:
    """The running program's own argv, read from /proc (not from its manifest)."""
    # by its command line: /proc's process names stop at 15 characters (kube-controller)
    pid = run(host, f"pgrep -of {shlex.quote(f'^([^ ]*/)?{program}( |$)')}").strip()
    return run(host, f"tr '\\0' '\\n' < /proc/{pid}/cmdline").splitlines()
