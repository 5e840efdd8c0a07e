"""The cluster spec: model, completion, validation errors and YAML I/O."""

from kpyops.spec.complete import complete
from kpyops.spec.errors import SpecError
from kpyops.spec.io import dumps, loads, parse, to_data
from kpyops.spec.model import Cluster, ClusterSpec, Host

__all__ = ["Cluster", "ClusterSpec", "Host", "SpecError", "complete", "dumps", "loads", "parse", "to_data"]
