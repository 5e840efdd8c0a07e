"""Checks of rendered Kubernetes configuration against the shared reference data.

- ``validate_object``: kubernetes-validate (strict) for the spec's Kubernetes version, or
  the newest schema it ships that is not newer (``schema_version`` says which).
- ``unknown_flags``: component flags not in ../shared/reference/component-flags.json.
- ``kubelet_config_problems``: KubeletConfiguration keys not in
  kubelet-config-v1beta1.json (recursing into nested types) and enum values not allowed.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path(
    __import__("os").environ.get("KPYOPS_REFERENCE", ROOT.parent / "shared" / "reference")
)
if not REFERENCE.exists():
    REFERENCE = Path("/work/shared/reference")


@functools.cache
def reference(name: str) -> dict:
    return json.loads((REFERENCE / name).read_text())


@functools.cache
def shipped_versions() -> list[tuple[int, int, int]]:
    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    out = []
    for d in base.iterdir():
        if d.name.startswith("v") and d.name.endswith("-local-strict"):
            out.append(tuple(int(x) for x in d.name[1:].removesuffix("-local-strict").split(".")))
    return sorted(out)


def schema_version(version: str) -> str:
    """The spec's version if kubernetes-validate ships it, else the newest older one."""
    want = tuple(int(x) for x in version.split("."))
    minor = (want[0], want[1], 0)
    candidates = [v for v in shipped_versions() if v <= minor]
    chosen = candidates[-1] if candidates else shipped_versions()[0]
    return ".".join(map(str, chosen))


def validate_object(obj: dict, version: str) -> None:
    try:
        kubernetes_validate.validate(obj, schema_version(version), strict=True)
    except kubernetes_validate.ValidationError as e:
        first = str(e).splitlines()[0]
        raise AssertionError(f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}: {first}") from None


def split_flags(command: list[str]) -> dict[str, str]:
    """--name=value arguments of a container command -> {name: value}."""
    flags = {}
    for arg in command[1:]:
        assert arg.startswith("--") and "=" in arg, f"not a --flag=value argument: {arg}"
        name, value = arg[2:].split("=", 1)
        assert name not in flags, f"--{name} given twice"
        flags[name] = value
    return flags


def unknown_flags(component: str, flags: dict[str, str]) -> list[str]:
    known = set(reference("component-flags.json")["components"][component]["flags"])
    return sorted(set(flags) - known)


def kubelet_config_problems(config: dict) -> list[str]:
    ref = reference("kubelet-config-v1beta1.json")
    enums = ref["enums"]
    problems: list[str] = []

    def walk(obj: dict, fields: dict, path: str) -> None:
        for key, value in obj.items():
            where = f"{path}{key}"
            if key not in fields:
                problems.append(f"unknown key {where}")
                continue
            nested = fields[key].get("nested")
            if nested and isinstance(value, dict):
                walk(value, ref["types"][nested]["fields"], where + ".")
            elif nested and isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, dict):
                        walk(item, ref["types"][nested]["fields"], f"{where}[{i}].")

    walk(config, ref["fields"], "")
    for key, spec in enums.items():
        if key.endswith("_keys") or key.endswith("_items"):
            continue
        cur: object = config
        parts = key.split(".")
        for part in parts:
            cur = cur.get(part) if isinstance(cur, dict) else None
        if cur is None:
            continue
        values = cur if isinstance(cur, list) else [cur]
        if key == "registerWithTaints.effect":
            values = [t.get("effect") for t in config.get("registerWithTaints", [])]
        for v in values:
            if v not in spec["values"]:
                problems.append(f"{key}={v!r} not in {spec['values']}")
    if "registerWithTaints" in config:
        for t in config["registerWithTaints"]:
            if t.get("effect") not in enums["registerWithTaints.effect"]["values"]:
                problems.append(f"taint effect {t.get('effect')!r} invalid")
    for item in config.get("enforceNodeAllocatable", []):
        if item not in enums["enforceNodeAllocatable_items"]["values"]:
            problems.append(f"enforceNodeAllocatable item {item!r} invalid")
    for opt in config.get("cpuManagerPolicyOptions", {}):
        if opt not in enums["cpuManagerPolicyOptions_keys"]["values"]:
            problems.append(f"cpuManagerPolicyOptions key {opt!r} invalid")
    return problems


def load_yaml(text: str) -> dict:
    return yaml.safe_load(text)
