"""Plan: find each desired resource, compare, and say what apply would do. Reads only."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from kpyops.clouds.aws.kinds import ORPHAN_KINDS, SCANNED
from kpyops.clouds.aws.resource import Actual, Context, Found, Resource
from kpyops.clouds.base import Change


@dataclass
class Step:
    resource: Resource
    actual: Actual | None
    change: Change | None


@dataclass
class ResourcePlan:
    """The AWS resources of one cluster: a step per desired resource, and what no longer is."""

    steps: list[Step]
    orphans: list[Found]

    @property
    def changes(self) -> list[Change]:
        out = [s.change for s in self.steps if s.change is not None]
        return out + [Change("delete", f.kind, f"{f.name} ({f.id})") for f in self.orphans]


def find_all(ctx: Context, resources: list[Resource]) -> list[Step]:
    """Find every desired resource in order (later ones may need earlier ids)."""
    steps = []
    for r in resources:
        actual = r.find(ctx)
        if actual is not None:
            ctx.ids[r.name] = actual.id
            ctx.actuals[r.name] = actual
        steps.append(Step(r, actual, None))
    return steps


def compare(ctx: Context, step: Step) -> Change | None:
    r = step.resource
    if step.actual is None:
        want = r.desired(ctx)
        return Change("create", r.kind, r.name, {k: (None, v) for k, v in want.items()})
    d = r.diff(ctx, step.actual)
    return Change("modify", r.kind, r.name, d) if d else None


def scan(ctx: Context, kinds=tuple(SCANNED)) -> list[Found]:
    """Everything the cluster owns, every kind scanned in parallel."""
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda k: SCANNED[k].scan(ctx), kinds))
    return [f for found in results for f in found]


def make_plan(ctx: Context, resources: list[Resource]) -> ResourcePlan:
    steps = find_all(ctx, resources)
    for step in steps:
        step.change = compare(ctx, step)
    wanted = {(r.kind, r.name) for r in resources}
    orphans = [
        f for f in scan(ctx, ORPHAN_KINDS)
        if not f.shared and (f.kind, f.name) not in wanted
    ]
    return ResourcePlan(steps, orphans)
