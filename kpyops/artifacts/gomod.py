"""go.mod for building k8s.io/kubernetes from the Go module proxy.

k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/client-go, ...) at
v0.0.0 and points them at ./staging/src with replace directives that hold only in its own
repository. A main module that requires k8s.io/kubernetes vX.Y.Z must replace each staging
module with its published v0.Y.Z. The list of staging modules is read from
k8s.io/kubernetes' own go.mod, so a new release's new staging modules are found, not kept
by hand. The committed go/kubernetes/go.mod is this function's output for the default
version (a unit test holds them equal).
"""

from __future__ import annotations

import re

from kpyops.artifacts.catalog import KUBERNETES

STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[a-z0-9-]+)\s+=>\s+\./staging/", re.M)
GO_LINE = re.compile(r"^go\s+(\S+)", re.M)
GODEBUG_LINE = re.compile(r"^godebug\s+(.+)$", re.M)


def staging_modules(upstream_go_mod: str) -> list[str]:
    return sorted(set(STAGING_REPLACE.findall(upstream_go_mod)))


def kubernetes_go_mod(version: str, upstream_go_mod: str) -> str:
    """Our go.mod for k8s.io/kubernetes v<version>, given that release's go.mod text."""
    minor, patch = version.split(".")[1:3]
    go = GO_LINE.search(upstream_go_mod)
    godebug = GODEBUG_LINE.search(upstream_go_mod)
    lines = [
        "module kpyops.io/build/kubernetes",
        "",
        f"go {go[1] if go else '1.25.0'}",
        "",
    ]
    # Go reads godebug only from the main module: copy upstream's runtime defaults
    if godebug:
        lines += [f"godebug {godebug[1]}", ""]
    lines += [f"require {KUBERNETES.module} v{version}", "", "tool ("]
    lines += [f"\t{p.package}" for p in KUBERNETES.programs]
    lines += [")", "", "replace ("]
    lines += [f"\t{m} => {m} v0.{minor}.{patch}" for m in staging_modules(upstream_go_mod)]
    lines += [")", ""]
    return "\n".join(lines)
