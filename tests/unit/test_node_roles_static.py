"""Static checks over the node roles' task files: every file a task writes states its
mode and owner, and the files the CIS benchmark names get at most the mode it requires
(the converge tests then check the same on real hosts with stat)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from rolerender import Inventory, RoleRenderer

ROLES = Path(__file__).resolve().parents[2] / "roles"
MINE = ["containerd", "control_plane", "kubelet", "kube_binaries", "coredns", "api_lb"]
WRITERS = ("ansible.builtin.template", "ansible.builtin.copy", "ansible.builtin.file")


def tasks(role: str):
    for path in sorted((ROLES / role / "tasks").glob("*.yml")):
        for task in yaml.safe_load(path.read_text()) or []:
            yield path.name, task
            for inner in task.get("block", []):
                yield path.name, inner


@pytest.mark.parametrize("role", MINE)
def test_every_written_file_has_an_explicit_mode(role):
    missing = []
    for fname, task in tasks(role):
        for module in WRITERS:
            args = task.get(module)
            if args is None or args.get("state") == "absent":
                continue
            if module == "ansible.builtin.file" and args.get("state") not in ("directory", "file"):
                continue
            if "mode" not in args:
                missing.append(f"{fname}: {task['name']}")
    assert missing == []


# CIS id -> (role, dest as written in the task, mode at most)
CIS = {
    "1.1.1/1.1.3/1.1.5 static pod manifests 600": ("control_plane", "{{ control_plane_manifest_dir }}/{{ item }}.yaml", 0o600),
    "1.1.13-1.1.18 admin, scheduler, controller-manager kubeconfigs 600": ("control_plane", "{{ control_plane_config_dir }}/{{ item.file }}", 0o600),
    "1.2.27 encryption config readable by root only": ("control_plane", "{{ control_plane_config_dir }}/encryption/encryption-config.yaml", 0o600),
    "4.1.1 kubelet unit 600": ("kubelet", "/etc/systemd/system/kubelet.service", 0o600),
    "4.1.5 kubelet kubeconfig 600": ("kubelet", "{{ kubelet_kubeconfig }}", 0o600),
    "4.1.9 kubelet config 600": ("kubelet", "{{ __kubelet_config_file }}", 0o600),
}


@pytest.mark.parametrize("check", sorted(CIS))
def test_cis_file_modes_and_owner_in_tasks(check):
    role, dest, limit = CIS[check]
    found = []
    for _, task in tasks(role):
        for module in WRITERS:
            args = task.get(module) or {}
            if args.get("dest") == dest:
                found.append(args)
    assert found, f"no task writes {dest}"
    for args in found:
        assert int(args["mode"], 8) & ~limit == 0, (check, args["mode"])
        assert (args.get("owner"), args.get("group")) == ("root", "root"), check


def test_secret_tasks_hide_their_content():
    """The encryption key and its configuration never reach a log or a --diff."""
    for role, names in {"control_plane": ("Encryption key | Generate", "Encryption key | Read",
                                          "Config | Write the encryption-at-rest")}.items():
        for _, task in tasks(role):
            if task["name"].startswith(names):
                assert task.get("no_log") is True, task["name"]
                if "ansible.builtin.template" in task or "ansible.builtin.copy" in task:
                    assert task.get("diff") is False, task["name"]


def test_haproxy_config_lists_every_control_plane():
    inv = Inventory({"metadata": {"name": "demo"},
                     "spec": {"controlPlane": {"count": 3, "apiLoadBalancer": {"type": "local"}}}})
    r = RoleRenderer("api_lb", inv, inv.host("kube_node"))
    cfg = r.render("haproxy.cfg.j2")
    for cp in inv.groups["kube_control_plane"]:
        assert f"server {cp} {inv.host_vars[cp]['kpyops_address']}:6443" in cfg
    assert "bind 127.0.0.1:6443" in cfg and "uri /readyz" in cfg
    assert r.var("__api_lb_wanted") is True
    cp = RoleRenderer("api_lb", inv, inv.host("kube_control_plane"))
    assert cp.var("__api_lb_wanted") is False
