"""Click parameter types for the names a verb takes: checked while the command line is parsed,
before any path, key, host or resource name is built from them. A bad name is a usage
error: exit code 2, nothing touched."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import click

from kpyops.kubeconfig import parse_duration
from kpyops.spec.names import (
    InvalidName,
    check_cluster_name,
    check_host_name,
    check_node_group_name,
)


class Name(click.ParamType):
    """A name checked by one of kpyops.spec.names' rules."""

    def __init__(self, what: str, check: Callable[[object], str]):
        self.name = what
        self._check = check

    def convert(self, value, param, ctx):
        try:
            return self._check(value)
        except InvalidName as err:
            self.fail(err.sentence, param, ctx)


CLUSTER_NAME = Name("cluster name", check_cluster_name)
NODE_GROUP_NAME = Name("node group name", check_node_group_name)
NODE_NAME = Name("node name", check_host_name)


class Duration(click.ParamType):
    """A duration such as 18h, 90m, 1h30m or 2d, as a timedelta."""

    name = "duration"

    def convert(self, value, param, ctx):
        if isinstance(value, dt.timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as err:
            self.fail(str(err), param, ctx)


DURATION = Duration()
