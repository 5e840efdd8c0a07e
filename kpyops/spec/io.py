"""Reading and writing specs as YAML, with validation errors turned into SpecError."""

from __future__ import annotations

from typing import Any, BinaryIO, TextIO

import yaml
from pydantic import ValidationError
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.error import MarkedYAMLError
from yaml.reader import ReaderError
from yaml.resolver import Resolver

from kpyops.spec.errors import SpecError, one_line
from kpyops.spec.model import Cluster


def parse(data: Any) -> Cluster:
    if not isinstance(data, dict):
        raise SpecError("spec", "a cluster spec is a YAML mapping")
    try:
        return Cluster.model_validate(data)
    except ValidationError as err:
        raise SpecError.from_validation_error(err) from None


# Bounds on what is read as a spec. A real spec is a few kilobytes and a few thousand values
# (even 5,000 listed hosts are ~300 KiB and ~35,000 values): anything larger is refused
# before it costs time or memory.
MAX_SPEC_BYTES = 1024 * 1024
# A spec expanded through YAML aliases may hold at most this many values: "billion laughs"
# documents are refused before they are built.
MAX_NODES = 50_000
# The deepest spec value is 6 levels down (spec.nodeGroups[0].kubelet.evictionHard.x).
MAX_DEPTH = 32
# A number in a spec has a few digits; YAML would compute a 100,000-digit (or 1:2:3:...
# sexagesimal) one for minutes.
MAX_NUMBER_CHARS = 64

try:  # libyaml scans and parses: ten times faster than PyYAML's Python parser
    from yaml._yaml import CParser as _Parser

    def _init_parser(loader, text: str) -> None:
        _Parser.__init__(loader, text)
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml.parser import Parser as _PyParser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, _PyParser):  # type: ignore[no-redef]
        def fetch_flow_collection_start(self, token_class):
            if self.flow_level >= MAX_DEPTH:
                raise SpecError("spec", _too_deep(self.get_mark().line))
            super().fetch_flow_collection_start(token_class)

    def _init_parser(loader, text: str) -> None:
        Reader.__init__(loader, text)
        Scanner.__init__(loader)
        _PyParser.__init__(loader)


def _too_deep(line: int) -> str:
    return f"line {line + 1}: nested more than {MAX_DEPTH} levels deep: not a cluster spec"


class _SpecLoader(Composer, _Parser, SafeConstructor, Resolver):
    """YAML's safe loader, refusing what would silently lose or multiply the user's text, or
    take unbounded time: duplicate keys, deep nesting, too many values, huge numbers.
    Events come from libyaml; nodes are composed here (PyYAML's Composer), counted as they
    are made."""

    def __init__(self, text: str):
        _init_parser(self, text)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent, index):
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > MAX_DEPTH:
                raise SpecError("spec", _too_deep(self.peek_event().start_mark.line))
            if self._nodes > MAX_NODES:
                raise SpecError("spec", f"more than {MAX_NODES} values: not a cluster spec")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # an unhashable key
                raise SpecError("spec", f"line {key_node.start_mark.line + 1}: a key must be "
                                "a plain value, not a list or mapping") from None
            if first is not key_node:
                raise SpecError("spec", f"duplicate key {one_line(repr(key), 80)} on line "
                                f"{key_node.start_mark.line + 1} (first on line "
                                f"{first.start_mark.line + 1}): give each key once")
        return super().construct_mapping(node, deep=deep)

    def _short_number(self, node):
        if len(node.value) > MAX_NUMBER_CHARS:
            raise SpecError("spec", f"line {node.start_mark.line + 1}: a number of "
                            f"{len(node.value)} characters: not a cluster spec value")

    def construct_yaml_int(self, node):
        self._short_number(node)
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node):
        self._short_number(node)
        return super().construct_yaml_float(node)


_SpecLoader.add_constructor("tag:yaml.org,2002:int", _SpecLoader.construct_yaml_int)
_SpecLoader.add_constructor("tag:yaml.org,2002:float", _SpecLoader.construct_yaml_float)


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


def _yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error on one line: where, and what."""
    if isinstance(err, MarkedYAMLError) and err.problem:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        context = f" ({err.context})" if err.context else ""
        return one_line(f"not valid YAML: {where}{err.problem}{context}")
    if isinstance(err, ReaderError):
        return one_line(f"not valid YAML: character #x{err.character:04x} at offset "
                        f"{err.position}: {err.reason}")
    return one_line(f"not valid YAML: {err}")


def too_large(size: int) -> SpecError:
    return SpecError("spec", f"larger than {MAX_SPEC_BYTES / 2**20:g} MiB ({size} bytes or "
                     "more): not a cluster spec")


def read_spec(file: BinaryIO | TextIO) -> bytes | str:
    """The content of an open spec file, reading at most MAX_SPEC_BYTES (+1 to tell)."""
    data = file.read(MAX_SPEC_BYTES + 1)
    if len(data) > MAX_SPEC_BYTES:
        raise too_large(len(data))
    return data


def load_yaml(text: str | bytes) -> Any:
    """One YAML document from UTF-8 text: duplicate keys, self-referring aliases, alias
    expansions past MAX_NODES, nesting past MAX_DEPTH, texts past MAX_SPEC_BYTES and bytes
    that are not UTF-8 are SpecErrors, not data."""
    if len(text) > MAX_SPEC_BYTES:
        raise too_large(len(text))
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise SpecError("spec", f"not UTF-8 text: byte 0x{err.object[err.start]:02x} at "
                            f"offset {err.start} cannot be decoded") from None
    try:
        loader = _SpecLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _expanded_size(node)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except SpecError:
        raise
    except yaml.YAMLError as err:
        raise SpecError("spec", _yaml_problem(err)) from None
    except RecursionError:
        raise SpecError("spec", "nested too deeply to be a cluster spec") from None
    except (ValueError, TypeError, OverflowError) as err:  # a value YAML cannot build
        raise SpecError("spec", one_line(f"a value YAML cannot read: {err}")) from None


def loads(text: str | bytes | BinaryIO | TextIO) -> Cluster:
    """A spec from YAML text or bytes (UTF-8), or an open file; any problem is a SpecError
    naming it."""
    if not isinstance(text, (str, bytes)):
        text = read_spec(text)
    return parse(load_yaml(text))


def to_data(cluster: Cluster, *, full: bool = True) -> dict:
    """Plain data in wire form (camelCase); ``full=False`` keeps only what the user set."""
    data = cluster.model_dump(mode="json", by_alias=True, exclude_unset=not full)
    if not full:
        data = {"apiVersion": cluster.api_version, "kind": cluster.kind, **data}
    return data


def dumps(cluster: Cluster, *, full: bool = True) -> str:
    return yaml.safe_dump(to_data(cluster, full=full), sort_keys=False)
