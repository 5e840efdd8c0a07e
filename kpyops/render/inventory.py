"""Completed spec -> Ansible inventory (hosts.yml and group_vars), from templates/inventory.

Rendering is pure: it returns {relative path: text} and writes nothing, so the same
function serves the CLI (which stores the files), `--dry-run`, and the tests.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import jinja2
import yaml

from kpyops.clouds.base import InventoryHost
from kpyops.clouds.capabilities import capabilities
from kpyops.spec.io import to_data
from kpyops.spec.model import Cluster

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "inventory"
CONTROL_PLANE_GROUP = "control-plane"  # pseudo node group of control-plane hosts


def spec_hosts(cluster: Cluster) -> list[InventoryHost]:
    """Inventory hosts of a cluster whose hosts are listed in its spec (local, bare metal)."""
    s = cluster.spec
    etcd_pool = s.etcd.hosts or s.control_plane.hosts
    etcd_names = {h.name for h in etcd_pool[: s.etcd.members or 0]}
    by_name: dict[str, InventoryHost] = {}

    def add(host, group: str, node_group: str | None = None) -> None:
        entry = by_name.get(host.name)
        if entry is None:
            entry = by_name[host.name] = InventoryHost(
                name=host.name,
                address=str(host.address),
                ssh_host=host.ssh_address or str(host.address),
                groups=[],
            )
        if group not in entry.groups:
            entry.groups.append(group)
        if node_group:
            entry.vars["kpyops_node_group"] = node_group

    for h in s.control_plane.hosts:
        add(h, "kube_control_plane", CONTROL_PLANE_GROUP)
    for h in etcd_pool:
        if h.name in etcd_names:
            add(h, "etcd")
    for g in s.node_groups:
        for h in g.hosts:
            add(h, "kube_node", g.name)
    return list(by_name.values())


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # JSON is YAML: values are written as JSON so no template can break the YAML around them
    env.filters["to_json"] = lambda v: json.dumps(v, sort_keys=False)
    return env


def render_inventory(
    cluster: Cluster,
    *,
    hosts: list[InventoryHost] | None = None,
    ssh_key_file: str | None = None,
    state_dir: str | None = None,
    known_hosts_file: str | None = None,
) -> dict[str, str]:
    """Render every template under templates/inventory; returns {path: text}."""
    hosts = spec_hosts(cluster) if hosts is None else hosts
    env = _environment()
    context = {
        "name": cluster.name,
        "spec": to_data(cluster)["spec"],
        "hosts": [asdict(h) for h in hosts],
        "ssh_key_file": cluster.spec.ssh.private_key_file or ssh_key_file,
        "state_dir": state_dir,
        "known_hosts_file": known_hosts_file,
        "caps": capabilities(cluster.spec.cloud).as_dict(),
    }
    out: dict[str, str] = {}
    for path in sorted(TEMPLATES.rglob("*.j2")):
        rel = path.relative_to(TEMPLATES).as_posix().removesuffix(".j2")
        text = env.get_template(path.relative_to(TEMPLATES).as_posix()).render(context)
        yaml.safe_load(text)  # a template bug fails here, not in Ansible later
        out[rel] = text
    return out
