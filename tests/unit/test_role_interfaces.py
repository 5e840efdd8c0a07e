"""Every role's interface: meta/argument_specs.yml documents each variable of
defaults/main.yml, with a description, and any default it shows is the one the role uses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "roles").iterdir() if p.is_dir())


def _load(path: Path) -> dict:
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def _options(role: Path) -> dict[str, dict]:
    specs = _load(role / "meta" / "argument_specs.yml").get("argument_specs", {})
    options: dict[str, dict] = {}
    for entry_point in specs.values():
        options.update(entry_point.get("options") or {})
    return options


def test_roles_are_found():
    assert len(ROLES) >= 10, ROLES


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_argument_specs_document_every_default_truthfully(role: Path):
    assert (role / "meta" / "argument_specs.yml").is_file(), f"{role.name}: no argument_specs"
    defaults = _load(role / "defaults" / "main.yml")
    options = _options(role)
    undocumented = sorted(set(defaults) - set(options))
    assert not undocumented, f"{role.name}: defaults without argument_specs entry: {undocumented}"
    wrong = {
        name: (opt["default"], defaults[name])
        for name, opt in options.items()
        if "default" in opt and name in defaults and opt["default"] != defaults[name]
    }
    assert not wrong, f"{role.name}: argument_specs default != defaults/main.yml: {wrong}"
    orphans = sorted(n for n, o in options.items() if "default" in o and n not in defaults)
    assert not orphans, f"{role.name}: documented default not set in defaults/main.yml: {orphans}"
    blank = sorted(n for n, o in options.items() if not o.get("description"))
    assert not blank, f"{role.name}: options without description: {blank}"
