"""The per-host change report, built from events the kpyops_events callback recorded.

golden/events/{check,apply}.jsonl were recorded on two local "hosts" by the callback
(`KPYOPS_RECORD_EVENTS=1 pytest tests/unit/test_changes.py` records them again): web1 is
behind the playbook in a template, a copy, a file mode and one loop item, runs a command
that changes no file, would drain itself, and notifies one handler that runs and one whose
condition skips it; web2 is already as the playbook wants it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kpyops.run.ansible import ANSIBLE_CFG, CALLBACK_PLUGINS, PROJECT
from kpyops.run.changes import HostChanges, format_host_changes, host_changes, read_events

GOLDEN = Path(__file__).with_name("golden") / "events"
ROOT = "/tmp/kpyops-events-demo"  # where the recording ran
WEB1 = f"{ROOT}/web1"


def _record() -> None:
    """Record the golden events again (check mode, then the apply)."""
    shutil.rmtree(ROOT, ignore_errors=True)
    playbook = str(Path(os.environ.get("VIRTUAL_ENV", PROJECT / ".venv")) / "bin" / "ansible-playbook")
    env = {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE_CFG), "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACK_PLUGINS)}
    base = [playbook, "-i", str(GOLDEN / "hosts.yml"), "-e", f"root={ROOT}"]
    subprocess.run([*base, str(GOLDEN / "prepare.yml")], env=env, check=True, capture_output=True)
    for name, extra in (("check", ["--check", "--diff"]), ("apply", ["--diff"])):
        out = GOLDEN / f"{name}.jsonl"
        out.unlink(missing_ok=True)
        subprocess.run([*base, str(GOLDEN / "playbook.yml"), *extra], check=True, capture_output=True,
                       env={**env, "KPYOPS_EVENTS": str(out)})


if os.environ.get("KPYOPS_RECORD_EVENTS"):
    _record()


@pytest.fixture(scope="module")
def plan() -> dict[str, HostChanges]:
    return host_changes(read_events(GOLDEN / "check.jsonl"))


@pytest.fixture(scope="module")
def applied() -> dict[str, HostChanges]:
    return host_changes(read_events(GOLDEN / "apply.jsonl"))


def test_files_with_their_diffs(plan):
    web1 = plan["web1"]
    assert sorted(web1.files) == [f"{WEB1}/{f}" for f in ("config.yaml", "demo.service", "key.pem", "two.txt")]
    config = web1.files[f"{WEB1}/config.yaml"]
    assert f"--- before: {WEB1}/config.yaml" in config
    assert "-maxPods: 110\n+maxPods: 55\n" in config
    assert web1.files[f"{WEB1}/key.pem"] == "mode: 0644 -> 0600\n"
    assert "-old\n+two\n" in web1.files[f"{WEB1}/two.txt"]  # the loop item that changed, only


def test_tasks_handlers_and_drains(plan):
    web1 = plan["web1"]
    assert web1.tasks == ["Set a value that names no file"]
    # the handler that runs, and the one whose condition is false here (no restart)
    assert web1.handlers == {"Restart demo": "runs", "Restart other": "skipped"}
    assert web1.drains == ["web1"]  # check mode skipped the command only for being check mode


def test_a_host_without_change_is_listed_empty(plan):
    assert plan["web2"].empty and plan["web2"] == HostChanges("web2")


def test_plan_and_apply_name_the_same_changes(plan, applied):
    assert plan.keys() == applied.keys()
    for host in plan:
        assert plan[host].files == applied[host].files, host  # contents and diffs too
        assert (plan[host].tasks, plan[host].handlers, plan[host].drains) == (
            applied[host].tasks, applied[host].handlers, applied[host].drains)


def test_report_lines(plan):
    lines = format_host_changes(plan)
    assert lines[0] == "  ~ host web1"
    assert f"      ~ file {WEB1}/key.pem" in lines
    assert "          mode: 0644 -> 0600" in lines
    assert "      ~ task Set a value that names no file" in lines
    assert "      > handler Restart demo" in lines
    assert "      > handler Restart other (skipped here: its condition is false)" in lines
    assert "      ! drain node web1" in lines
    assert not any("web2" in line for line in lines)
    assert f"      ~ file {WEB1}/config.yaml" in format_host_changes(plan, diffs=False)
    assert not any(line.strip().startswith("+maxPods") for line in format_host_changes(plan, diffs=False))


def test_delegated_censored_and_notified_only():
    events = [
        # a file written on the control machine for this host
        {"host": "cp-1", "task": "pki : Write", "action": "ansible.builtin.copy", "status": "changed",
         "changed": True, "dest": "/state/pki/cp-1.crt", "delegated_to": "localhost", "notify": []},
        # a no_log task: Ansible censored its result, so it names no file
        {"host": "cp-1", "task": "pki : Copy keys", "action": "ansible.builtin.copy", "status": "changed",
         "changed": True, "censored": True, "notify": ["Restart etcd members one at a time"]},
        # a drain that is skipped because the API does not answer is no drain
        {"host": "cp-1", "task": "kubelet : Drain | Cordon and drain the node", "action": "ansible.builtin.command",
         "status": "skipped", "skip_reason": "Conditional result was False", "notify": []},
        {"host": "cp-1", "task": "kubelet : Drain | Cordon and drain the node", "action": "ansible.builtin.command",
         "status": "skipped", "msg": "Command would have run if not in check mode",
         "argv": ["kubectl", "drain", "node-1", "--timeout=5m"], "notify": []},
    ]
    r = host_changes(events)["cp-1"]
    assert r.files == {"localhost:/state/pki/cp-1.crt": ""}
    assert r.tasks == ["pki : Copy keys"]
    # a handler that left no result of its own (an include, run once elsewhere) is "notified"
    assert r.handlers == {"Restart etcd members one at a time": "notified"}
    assert r.drains == ["node-1"]


def test_the_uncordon_that_ends_a_drain_is_part_of_the_drain():
    """Check mode skips the drain and the uncordon alike: the plan lists the drain only, so the
    apply (where the uncordon changed) must fold it into the drain too."""
    drain = {"host": "cp-1", "task": "kubelet : Drain | Cordon and drain the node",
             "action": "ansible.builtin.command", "argv": ["kubectl", "drain", "node-1"]}
    uncordon = {"host": "cp-1", "task": "kubelet : Uncordon | Let pods back onto the node",
                "action": "ansible.builtin.command", "argv": ["kubectl", "uncordon", "node-1"]}
    skipped = {"status": "skipped", "msg": "Command would have run if not in check mode"}
    ran = {"status": "changed", "changed": True}
    plan = host_changes([{**drain, **skipped}, {**uncordon, **skipped}])["cp-1"]
    applied = host_changes([{**drain, **ran}, {**uncordon, **ran}])["cp-1"]
    assert (plan.drains, plan.tasks) == (applied.drains, applied.tasks) == (["node-1"], [])
    # an uncordon of its own (no drain in this run) is no drain, and no task either
    assert host_changes([{**uncordon, **ran}])["cp-1"].tasks == []


def test_listen_topics_name_the_handlers_that_answer():
    events = [
        {"host": "cp-1", "task": "control_plane : Write the manifest", "action": "ansible.builtin.template",
         "status": "changed", "changed": True, "dest": "/etc/kubernetes/manifests/kube-apiserver.yaml",
         "notify": ["Wait for kube-apiserver"]},
        {"host": "cp-1", "task": "control_plane : Report a skipped health wait", "handler": True,
         "status": "ok", "listen": ["Wait for kube-apiserver", "Wait for kube-scheduler"]},
        {"host": "cp-1", "task": "control_plane : Wait for kube-apiserver", "handler": True,
         "status": "skipped", "listen": []},
    ]
    r = host_changes(events)["cp-1"]
    assert r.handlers == {"Report a skipped health wait": "runs", "Wait for kube-apiserver": "skipped"}
    assert r.files == {"/etc/kubernetes/manifests/kube-apiserver.yaml": ""}


def test_events_file_cut_short_is_read_up_to_the_cut(tmp_path):
    good = (GOLDEN / "check.jsonl").read_text().splitlines()[0]
    path = tmp_path / "events.jsonl"
    path.write_text(good + "\n" + good[:40])
    assert len(read_events(path)) == 1
