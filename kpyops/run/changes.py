"""What a run changed (or, in check mode, would change), per host, from its recorded events.

The events are the JSON lines of the ``kpyops_events`` callback (kpyops/run/callback_plugins):
one per task result and host. From them each host gets

- the files a task changed, each with its diff (as Ansible's ``--diff`` gives it),
- the changed tasks that name no file (a sysctl, a loaded module, a started service),
- the handlers those tasks notified, and whether each ran or its condition skipped it
  (a restart that would happen, or one that would not here),
- the nodes it would drain: a ``kubectl drain`` command that would run (the
  ``kubectl uncordon`` that ends a drain is part of it, not a task of its own).

A plan (check mode) and the apply that follows build their reports the same way, so the two
can be held equal.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

COMMAND_ACTIONS = {"command", "shell"}
_SUFFIX = re.compile(r"\s+\((?:content|file attributes)\)$")
WOULD_RUN = "would have run"  # the command module's word for a command check mode skipped


@dataclass
class HostChanges:
    host: str
    files: dict[str, str] = field(default_factory=dict)  # path -> diff ("" when none was given)
    tasks: list[str] = field(default_factory=list)  # changed tasks that name no file
    handlers: dict[str, str] = field(default_factory=dict)  # handler -> "runs" | "skipped" | "notified"
    drains: list[str] = field(default_factory=list)  # nodes drained by this host's run

    @property
    def empty(self) -> bool:
        return not (self.files or self.tasks or self.handlers or self.drains)


def read_events(path: str | Path) -> list[dict]:
    """The events a run recorded; a line cut short by a killed run is left out."""
    events = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def _short(action: str) -> str:
    return action.rsplit(".", 1)[-1]


def _parts(event: dict) -> list[dict]:
    """The results of an event: each loop item's, or the task's own."""
    return event["results"] if event.get("results") else [event]


def _diff_entries(part: dict) -> list[dict]:
    diff = part.get("diff")
    if isinstance(diff, dict):
        return [diff]
    return [d for d in diff if isinstance(d, dict)] if isinstance(diff, list) else []


def _path_of(entry: dict) -> str | None:
    for key in ("before_header", "after_header"):
        header = entry.get(key)
        if isinstance(header, str) and header.startswith("/"):
            return _SUFFIX.sub("", header)
    for key in ("before", "after"):
        side = entry.get(key)
        if isinstance(side, dict) and isinstance(side.get("path"), str):
            return side["path"]
    return None


def _lines(text: str) -> list[str]:
    lines = text.splitlines(True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def render_diff(entry: dict, path: str) -> str:
    """One Ansible diff entry as text: a unified diff of contents, or 'key: old -> new'."""
    if isinstance(entry.get("prepared"), str):
        return entry["prepared"].rstrip("\n") + "\n"
    before, after = entry.get("before", ""), entry.get("after", "")
    if isinstance(before, dict) or isinstance(after, dict):
        before = before if isinstance(before, dict) else {}
        after = after if isinstance(after, dict) else {}
        return "".join(f"{k}: {before.get(k)} -> {after.get(k)}\n"
                       for k in sorted(before.keys() | after.keys())
                       if k != "path" and before.get(k) != after.get(k))
    return "".join(difflib.unified_diff(_lines(str(before)), _lines(str(after)),
                                        f"before: {path}", f"after: {path}"))


def part_files(part: dict) -> dict[str, str]:
    """{path: diff} of the files one changed result names."""
    files: dict[str, str] = {}
    for entry in _diff_entries(part):
        path = _path_of(entry)
        if path:
            files[path] = files.get(path, "") + render_diff(entry, path)
    if not files:
        for key in ("dest", "path"):
            if isinstance(part.get(key), str) and part[key].startswith("/"):
                files[part[key]] = ""
                break
    return files


def _would_run(part: dict, status: str) -> bool:
    """A command that ran and changed, or that check mode skipped only for being check mode."""
    if part.get("changed"):
        return True
    return bool(part.get("skipped") or status == "skipped") and WOULD_RUN in str(part.get("msg", ""))


def drained_nodes(event: dict, verb: str = "drain") -> list[str]:
    """Nodes a `... drain NODE` command of this event drains (or would drain); with
    ``verb="uncordon"``, the nodes it lets pods back onto."""
    if _short(event.get("action", "")) not in COMMAND_ACTIONS:
        return []
    nodes = []
    for part in _parts(event):
        argv = part.get("argv") or []
        if verb in argv and _would_run(part, event.get("status", "")):
            i = argv.index(verb)
            rest = [a for a in argv[i + 1:] if not a.startswith("-")]
            nodes.append(rest[0] if rest else event["host"])
    return nodes


def _handler_names(event: dict) -> set[str]:
    name = event.get("task", "")
    return {name, name.split(" : ", 1)[-1], *event.get("listen", [])}


def host_changes(events: Iterable[dict]) -> dict[str, HostChanges]:
    """Per host (in the order hosts first appear) what the run changed; hosts without a
    change are listed too, empty, so a caller can tell 'no change' from 'not run'."""
    hosts: dict[str, HostChanges] = {}
    notified: dict[str, list[str]] = {}
    handler_runs: dict[str, list[tuple[set[str], str, str]]] = {}
    for ev in events:
        host = ev["host"]
        report = hosts.setdefault(host, HostChanges(host))
        if ev.get("handler"):
            name = ev.get("task", "").split(" : ", 1)[-1]
            handler_runs.setdefault(host, []).append((_handler_names(ev), name, ev.get("status", "")))
            continue
        drains = drained_nodes(ev)
        for node in drains:
            if node not in report.drains:
                report.drains.append(node)
        # a drain is listed as one, not a task; the uncordon that ends it is part of it (check
        # mode skips both commands, so a plan could not list the uncordon as a task)
        if ev.get("status") != "changed" or drains or drained_nodes(ev, "uncordon"):
            continue
        files: dict[str, str] = {}
        for part in _parts(ev):
            if part.get("changed"):
                files.update(part_files(part))
        # a file written on another machine (the control machine, a delegate) says where
        where = ev.get("delegated_to")
        prefix = f"{where}:" if where and where != host else ""
        for path, diff in files.items():
            report.files[prefix + path] = report.files.get(prefix + path, "") + diff
        if not files and ev["task"] not in report.tasks:
            report.tasks.append(ev["task"])
        for name in ev.get("notify") or []:
            notified.setdefault(host, [])
            if name not in notified[host]:
                notified[host].append(name)
    for host, names in notified.items():
        report = hosts[host]
        for n in names:
            runs = [(name, status) for listen, name, status in handler_runs.get(host, []) if n in listen]
            if not runs:
                report.handlers.setdefault(n, "notified")
            for name, status in runs:
                state = "skipped" if status == "skipped" else "runs"
                if report.handlers.get(name) != "runs":
                    report.handlers[name] = state
    return hosts


def format_host_changes(reports: dict[str, HostChanges], *, diffs: bool = True) -> list[str]:
    """Lines for a person: per host its files (with their diffs), tasks, handlers, drains."""
    out: list[str] = []
    for host, r in reports.items():
        if r.empty:
            continue
        out.append(f"  ~ host {host}")
        for path, diff in r.files.items():
            out.append(f"      ~ file {path}")
            if diffs:
                out += [f"          {line}" for line in diff.splitlines()]
        out += [f"      ~ task {task}" for task in r.tasks]
        for name, state in r.handlers.items():
            why = {"runs": "", "skipped": " (skipped here: its condition is false)",
                   "notified": " (notified)"}[state]
            out.append(f"      > handler {name}{why}")
        out += [f"      ! drain node {node}" for node in r.drains]
    return out
