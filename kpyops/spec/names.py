"""The naming rule for clusters, node groups and hosts, in one place.

A name becomes a folder in the state store, an S3 key, a cache folder, a container and a
host name, so it is checked before any of those is built from it: by the spec model (the
same constants), by every CLI verb that takes a name, and by the state store itself.
"""

from __future__ import annotations

import re

from kpyops.spec.errors import SpecError

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
CLUSTER_NAME_MAX = 30
NODE_GROUP_NAME_MAX = 40
HOST_NAME_MAX = 63
# Node-group names kpyops uses itself, and why.
RESERVED_NODE_GROUP_NAMES = {
    "control-plane": "the group of the control planes in group_vars",
    "cp": "control-plane machines are named <cluster>-cp-<n>",
    "bastion": "the name of the bastion machine on aws",
}


class InvalidName(SpecError):
    """A cluster, node-group or host name that breaks the naming rule."""

    def __init__(self, what: str, name: object, max_length: int):
        self.sentence = f"{name!r} is not a valid {what}: {rule(max_length)}"
        super().__init__(what, f"{name!r} is not valid: {rule(max_length)}")


def is_valid(name: object, max_length: int) -> bool:
    """True when ``name`` is a DNS label (RFC 1123) of at most ``max_length`` characters."""
    return (isinstance(name, str) and 0 < len(name) <= max_length
            and re.fullmatch(DNS_LABEL, name) is not None)


def rule(max_length: int) -> str:
    return (f"must be a DNS label of 1 to {max_length} characters: lowercase letters, digits "
            "and '-', starting and ending with a letter or digit")


def _check(name: object, what: str, max_length: int) -> str:
    if not is_valid(name, max_length):
        raise InvalidName(what, name, max_length)
    return name  # type: ignore[return-value]


def check_cluster_name(name: object) -> str:
    """``name`` if it is a valid cluster name; else InvalidName (a SpecError)."""
    return _check(name, "cluster name", CLUSTER_NAME_MAX)


def check_node_group_name(name: object) -> str:
    return _check(name, "node group name", NODE_GROUP_NAME_MAX)


def check_host_name(name: object) -> str:
    return _check(name, "node name", HOST_NAME_MAX)
