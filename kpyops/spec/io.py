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


# A spec expanded through YAML aliases may hold at most this many values (a real one holds
# a few thousand): "billion laughs" documents are refused before they are built.
MAX_NODES = 100_000


class _SpecLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing what would silently lose or multiply the user's text."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # an unhashable key: the safe loader says so itself
                break
            if first is not key_node:
                raise SpecError("spec", f"duplicate key {key!r} on line "
                                f"{key_node.start_mark.line + 1} (first on line "
                                f"{first.start_mark.line + 1}): give each key once")
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node) -> int:
    """How many values ``node`` stands for once every alias is expanded (shared subtrees
    counted once each time they are used, computed once). Refuses a node containing itself."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(n: yaml.Node) -> int:
        if id(n) in sizes:
            return sizes[id(n)]
        if id(n) in open_:
            raise SpecError("spec", f"line {n.start_mark.line + 1}: a YAML alias refers to "
                            "the value it is part of")
        open_.add(id(n))
        total = 1
        if isinstance(n, yaml.SequenceNode):
            total += sum(size(c) for c in n.value)
        elif isinstance(n, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in n.value)
        open_.discard(id(n))
        sizes[id(n)] = total
        if total > MAX_NODES:
            raise SpecError("spec", f"more than {MAX_NODES} values once YAML aliases are "
                            "expanded: not a cluster spec")
        return total

    return size(node)


def load_yaml(text: str | bytes) -> Any:
    """One YAML document from UTF-8 text: duplicate keys, self-referring aliases, alias
    expansions past MAX_NODES and bytes that are not UTF-8 are SpecErrors, not data."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise SpecError("spec", f"not UTF-8 text: byte 0x{err.object[err.start]:02x} at "
                            f"offset {err.start} cannot be decoded") from None
    try:
        loader = _SpecLoader(text)  # reads the text: may refuse a control character
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _expanded_size(node)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        raise SpecError("spec", f"not valid YAML: {err}") from None
    except RecursionError:
        raise SpecError("spec", "nested too deeply to be a cluster spec") from None


def loads(text: str | bytes) -> Cluster:
    """A spec from YAML text or bytes (UTF-8); any problem is a SpecError naming it."""
    return parse(load_yaml(text))


def to_data(cluster: Cluster, *, full: bool = True) -> dict:
    """Plain data in wire form (camelCase); ``full=False`` keeps only what the user set."""
    data = cluster.model_dump(mode="json", by_alias=True, exclude_unset=not full)
    if not full:
        data = {"apiVersion": cluster.api_version, "kind": cluster.kind, **data}
    return data


def dumps(cluster: Cluster, *, full: bool = True) -> str:
    return yaml.safe_dump(to_data(cluster, full=full), sort_keys=False)
