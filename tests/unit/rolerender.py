"""Render a role's templates exactly as Ansible would, from a spec, without any host.

The variables are the ones a real run sees: the inventory and group_vars that
``kpyops.render.inventory`` renders from the completed spec, the role's defaults and
vars, and the host variables. Templating goes through ansible-core's own Templar, so
filters, tests and lazy variable templating behave as in a playbook run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import filter_loader
from ansible.template import Templar, trust_as_template

from kpyops.render.inventory import render_inventory
from kpyops.spec.complete import complete
from kpyops.spec.model import Cluster

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "roles"
# the filters ansible.cfg gives every role (filter_plugins)
filter_loader.add_directory(str(ROOT / "plugins" / "filter"))


def _trust(value: Any) -> Any:
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: _trust(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_trust(v) for v in value]
    return value


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {} if path.exists() else {}


class Inventory:
    """hosts, groups and group_vars of a cluster, rendered from its spec."""

    def __init__(self, spec: dict | Cluster, state_dir: str = "/tmp/kpyops-state"):
        cluster = spec if isinstance(spec, Cluster) else Cluster.model_validate(spec)
        self.cluster = complete(cluster)
        files = render_inventory(self.cluster, state_dir=state_dir)
        hosts_doc = yaml.safe_load(files["hosts.yml"])["all"]
        self.group_vars: dict = {}
        for rel, text in sorted(files.items()):
            if rel.startswith("group_vars/all/"):
                self.group_vars.update(yaml.safe_load(text) or {})
        self.group_vars.update(hosts_doc.get("vars") or {})
        self.host_vars: dict[str, dict] = hosts_doc["hosts"]
        self.groups: dict[str, list[str]] = {"all": list(self.host_vars)}
        for group, body in hosts_doc["children"].items():
            self.groups[group] = list((body.get("hosts") or {}).keys())
        self.groups["k8s_cluster"] = sorted(
            set(self.groups["kube_control_plane"]) | set(self.groups["kube_node"]),
            key=list(self.host_vars).index,
        )

    def host(self, group: str, index: int = 0) -> str:
        return self.groups[group][index]


class RoleRenderer:
    """Templates of one role, rendered for one host of an Inventory."""

    def __init__(self, role: str, inventory: Inventory, host: str, extra: dict | None = None):
        self.role_dir = ROLES / role
        base = dict(inventory.group_vars)
        base.update(_load(self.role_dir / "defaults" / "main.yml"))
        hostvars = {h: {**base, **hv, "inventory_hostname": h} for h, hv in inventory.host_vars.items()}
        variables = {**base, **_load(self.role_dir / "vars" / "main.yml"), **inventory.host_vars[host]}
        variables.update(extra or {})
        variables.update(
            inventory_hostname=host,
            groups=inventory.groups,
            hostvars=hostvars,
            group_names=[g for g, hs in inventory.groups.items() if host in hs and g != "all"],
            ansible_managed="Managed by kpyops",
            ansible_check_mode=False,
            role_path=str(self.role_dir),
        )
        self.variables = variables
        self.templar = Templar(loader=DataLoader(), variables=_trust(variables))

    def var(self, name: str) -> Any:
        return self.templar.template(trust_as_template("{{ " + name + " }}"))

    def render(self, template: str, **local: Any) -> str:
        """One template of the role, with loop or task variables given as ``local``."""
        text = (self.role_dir / "templates" / template).read_text()
        templar = Templar(loader=DataLoader(), variables=_trust({**self.variables, **local}))
        return templar.template(trust_as_template(text))

    def task_content(self, tasks: str, name: str, **local: Any) -> str:
        """What the ``copy`` task named ``name`` in ``tasks/<tasks>`` writes (its ``content``),
        with loop or task variables given as ``local``."""
        doc = yaml.safe_load((self.role_dir / "tasks" / tasks).read_text())
        task = next(t for t in doc if t.get("name") == name)
        templar = Templar(loader=DataLoader(), variables=_trust({**self.variables, **local}))
        return templar.template(trust_as_template(task["ansible.builtin.copy"]["content"]))
