"""Reading and writing specs as YAML, with validation errors turned into SpecError."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from kpyops.spec.errors import SpecError
from kpyops.spec.model import Cluster


def parse(data: Any) -> Cluster:
    if not isinstance(data, dict):
        raise SpecError("spec", "a cluster spec is a YAML mapping")
    try:
        return Cluster.model_validate(data)
    except ValidationError as err:
        raise SpecError.from_validation_error(err) from None


def loads(text: str) -> Cluster:
    try:
        return parse(yaml.safe_load(text))
    except yaml.YAMLError as err:
        raise SpecError("spec", f"not valid YAML: {err}") from None


def to_data(cluster: Cluster, *, full: bool = True) -> dict:
    """Plain data in wire form (camelCase); ``full=False`` keeps only what the user set."""
    data = cluster.model_dump(mode="json", by_alias=True, exclude_unset=not full)
    if not full:
        data = {"apiVersion": cluster.api_version, "kind": cluster.kind, **data}
    return data


def dumps(cluster: Cluster, *, full: bool = True) -> str:
    return yaml.safe_dump(to_data(cluster, full=full), sort_keys=False)
