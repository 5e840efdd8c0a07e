"""Ansible callback: every task result of a run as one JSON line, for kpyops' change report.

kpyops puts this folder on ANSIBLE_CALLBACK_PLUGINS and names a file in KPYOPS_EVENTS
(kpyops.run.ansible); without that variable the plugin records nothing. It keeps only what
the per-host report needs (kpyops.run.changes): status, changed, diffs, the paths a module
names, the handlers a task notifies, a command's argv. Results of no_log tasks reach
callbacks censored by Ansible itself, so no secret is written here.
"""

from __future__ import annotations

import json
import os

from ansible.playbook.handler import Handler
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: kpyops_events
    type: notification
    short_description: JSON lines of task results for kpyops
    description:
      - Writes one JSON object per task result to the file named by KPYOPS_EVENTS.
"""

# what is kept of a module result (or of each loop item's)
KEPT = ("changed", "skipped", "failed", "diff", "dest", "path", "skip_reason")
COMMANDS = ("command", "shell", "ansible.builtin.command", "ansible.builtin.shell",
            "ansible.legacy.command", "ansible.legacy.shell")
MSG_CHARS = 300


def _part(data: dict, action: str, status: str = "") -> dict:
    """What is kept of one result; `status` for a task's own result, whose "skipped" and
    "failed" keys Ansible removes (the callback method says it)."""
    part = {k: data[k] for k in KEPT if k in data}
    if data.get("censored"):
        part["censored"] = True
    unusual = status in ("skipped", "failed", "ignored") or data.get("skipped") or data.get("failed")
    if unusual and isinstance(data.get("msg"), str):
        part["msg"] = data["msg"][:MSG_CHARS]
    if action in COMMANDS:
        args = (data.get("invocation") or {}).get("module_args") or {}
        argv = args.get("argv") or data.get("cmd")
        if isinstance(argv, str):
            argv = argv.split()
        if argv:
            part["argv"] = [str(a) for a in argv]
    if "_ansible_item_label" in data or "item" in data:
        part["item"] = str(data.get("_ansible_item_label", data.get("item")))[:MSG_CHARS]
    return part


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "kpyops_events"
    CALLBACK_NEEDS_ENABLED = False  # loaded wherever kpyops puts this folder on the path

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        path = os.environ.get("KPYOPS_EVENTS")
        self._out = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115

    def _record(self, result, status: str) -> None:
        if self._out is None:
            return
        task = getattr(result, "task", None) or result._task
        host = getattr(result, "host", None) or result._host
        data = getattr(result, "result", None)
        data = result._result if data is None else data
        action = str(getattr(task, "resolved_action", None) or task.action)
        if status == "ok" and data.get("changed"):
            status = "changed"
        notify = task.notify or []
        event = {
            "host": host.get_name(),
            "task": task.get_name(),
            "role": task._role.get_name() if task._role else None,
            "action": action,
            "status": status,
            "handler": isinstance(task, Handler),
            "notify": [notify] if isinstance(notify, str) else list(notify),
            **_part(data, action, status),
        }
        if isinstance(task, Handler):
            listen = task.listen or []
            event["listen"] = [listen] if isinstance(listen, str) else list(listen)
        delegated = data.get("_ansible_delegated_vars") or {}
        if delegated.get("ansible_host"):
            event["delegated_to"] = str(delegated["ansible_host"])
        if isinstance(data.get("results"), list):
            event["results"] = [_part(r, action) for r in data["results"] if isinstance(r, dict)]
        self._out.write(json.dumps(event, default=str) + "\n")
        self._out.flush()

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        if self._out is not None:
            self._out.close()
            self._out = None
