"""Running ansible-playbook: the command line, its live output, and the play recap.

Output is streamed line by line. Without -v the user sees a progress line (the current
task and elapsed time); with -v every line Ansible prints. The PLAY RECAP is parsed so
callers (and tests) can check changed=0 on a re-run. Every task result is also recorded as
data by the ``kpyops_events`` callback (``PlaybookResult.events``), from which
kpyops.run.changes builds the per-host report of what changed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kpyops.run.changes import read_events

PROJECT = Path(__file__).resolve().parents[2]
ANSIBLE_CFG = PROJECT / "ansible.cfg"
FACT_CACHE = Path.home() / ".cache" / "kpyops" / "ansible-facts"
CALLBACK_PLUGINS = Path(__file__).resolve().parent / "callback_plugins"

_TASK = re.compile(r"^(TASK|RUNNING HANDLER) \[(?P<name>.*)\]")
_PLAY = re.compile(r"^PLAY \[(?P<name>.*)\]")
_RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(\w+=\d+\s*)+)$")


class PlaybookFailed(RuntimeError):
    def __init__(self, playbook: str, rc: int, tail: list[str]):
        self.rc, self.tail = rc, tail
        super().__init__(f"{playbook} failed (exit {rc})")


@dataclass
class PlaybookResult:
    rc: int
    recap: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0
    output: list[str] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)  # kpyops_events: one per task result

    @property
    def changed(self) -> int:
        return sum(h.get("changed", 0) for h in self.recap.values())

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not any(
            h.get("failed", 0) or h.get("unreachable", 0) for h in self.recap.values()
        )


def combine(*results: PlaybookResult) -> PlaybookResult:
    """Playbook runs made one after the other, as one result (recaps summed per host)."""
    recap: dict[str, dict[str, int]] = {}
    for r in results:
        for host, counts in r.recap.items():
            mine = recap.setdefault(host, {})
            for key, n in counts.items():
                mine[key] = mine.get(key, 0) + n
    return PlaybookResult(rc=max(r.rc for r in results), recap=recap,
                          seconds=sum(r.seconds for r in results),
                          output=[line for r in results for line in r.output],
                          events=[ev for r in results for ev in r.events])


def parse_recap(lines: list[str]) -> dict[str, dict[str, int]]:
    recap: dict[str, dict[str, int]] = {}
    in_recap = False
    for line in lines:
        if line.startswith("PLAY RECAP"):
            in_recap, recap = True, {}
            continue
        if in_recap:
            m = _RECAP.match(line.strip())
            if m:
                recap[m["host"]] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m["counts"])}
    return recap


def ansible_warnings(lines: list[str]) -> list[str]:
    """Messages roles report with a "WARNING:" or "SKIPPED:" debug message (a missing kernel
    module, a stage that cannot run on these machines), each once, prefix kept."""
    text = "\n".join(lines)
    found = re.findall(r'"msg": "((?:WARNING|SKIPPED): .*?)"\n\s*}', text, flags=re.S)
    return list(dict.fromkeys(" ".join(m.replace("\\n", " ").split()) for m in found))


def playbook_command(playbook: str, inventory: str, *, extra_vars: dict | None = None,
                     limit: str | None = None, check: bool = False, diff: bool = False,
                     verbosity: int = 0) -> list[str]:
    cmd = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", inventory,
           str(PROJECT / playbook)]
    for k, v in (extra_vars or {}).items():
        cmd += ["-e", f"{k}={v}"]
    if limit:
        cmd += ["--limit", limit]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    if verbosity > 1:
        cmd.append("-" + "v" * (verbosity - 1))
    return cmd


DSA_WARNING = "ignore:DSA is deprecated"


def run_playbook(playbook: str, inventory: str, *, on_line: Callable[[str], None] | None = None,
                 on_task: Callable[[str], None] | None = None, **kwargs) -> PlaybookResult:
    """Run a playbook of this project against an inventory; raise PlaybookFailed on failure."""
    plugins = os.pathsep.join(filter(None, [str(CALLBACK_PLUGINS),
                                            os.environ.get("ANSIBLE_CALLBACK_PLUGINS")]))
    start = time.monotonic()
    lines: list[str] = []
    tail: deque[str] = deque(maxlen=60)
    with tempfile.NamedTemporaryFile(prefix="kpyops-events-", suffix=".jsonl") as events:
        env = {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE_CFG), "ANSIBLE_FORCE_COLOR": "0",
               "PYTHONUNBUFFERED": "1", "COLUMNS": "1000",  # no wrapped lines to parse
               "ANSIBLE_CALLBACK_PLUGINS": plugins, "KPYOPS_EVENTS": events.name,
               # ansible-core imports cryptography's DSA module, which warns on import at
               # every run: not the operator's concern (kpyops itself makes no DSA keys)
               "PYTHONWARNINGS": ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"),
                                                         DSA_WARNING]))}
        proc = subprocess.Popen(playbook_command(playbook, inventory, **kwargs), cwd=PROJECT,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            lines.append(line)
            tail.append(line)
            if on_line:
                on_line(line)
            m = _TASK.match(line) or _PLAY.match(line)
            if m and on_task:
                on_task(m["name"])
        rc = proc.wait()
        recorded = read_events(events.name)
    result = PlaybookResult(rc=rc, recap=parse_recap(lines), seconds=time.monotonic() - start,
                            output=lines, events=recorded)
    if not result.ok:
        raise PlaybookFailed(playbook, rc, list(tail))
    return result
