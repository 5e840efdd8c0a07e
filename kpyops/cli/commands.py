"""The list of top-level commands. Add one import line per command module."""

from __future__ import annotations

import importlib

MODULES = [
    "kpyops.cli.cluster",  # create / update / get / delete cluster (and delete node)
    "kpyops.cli.spec",  # spec schema
    "kpyops.cli.image",  # image (the local test-host image)
    "kpyops.cli.artifacts",  # artifacts build (components from Go modules)
    "kpyops.cli.certs",  # certs check / renew
    "kpyops.cli.validate",  # validate cluster
    "kpyops.cli.export",  # export kubeconfig
    "kpyops.cli.state",  # state unlock
    "kpyops.cli.doctor",  # doctor (can this identity create and delete a cluster here?)
    "kpyops.cli.proxy",  # proxy (the per-node service proxy daemon)
    "kpyops.cli.reset",  # reset host (reset.yml on one host)
    "kpyops.cli.rolling",  # rolling-update cluster (batches drained, validated in between)
    "kpyops.cli.upgrade",  # upgrade cluster (a new Kubernetes version, host by host)
]


def all_commands():
    out = []
    for name in MODULES:
        mod = importlib.import_module(name)
        cmds = getattr(mod, "commands", None) or [mod.command]
        out.extend(cmds)
    return out
