"""Apply: make each desired resource match, in order, then remove what is no longer wanted."""

from __future__ import annotations

from kpyops.clouds.aws.deleter import delete_found
from kpyops.clouds.aws.planner import compare, make_plan
from kpyops.clouds.aws.resource import Context, Resource
from kpyops.clouds.base import Change, Progress


def apply_resources(
    ctx: Context,
    resources: list[Resource],
    progress: Progress = lambda _m: None,
    *,
    delete_timeout: float = 900,
) -> list[Change]:
    plan = make_plan(ctx, resources)  # what is there now, not what a past plan saw
    # Refuse before touching anything if a change cannot be made in place.
    for step in plan.steps:
        if step.change is not None and step.change.action == "modify":
            step.resource.check_changes(step.change.fields)
    done: list[Change] = []
    for step in plan.steps:
        r = step.resource
        change = compare(ctx, step)  # again: ids of resources made above now resolve
        if change is None:
            continue
        if change.action == "create":
            progress(f"creating {r.kind} {r.name}")
            actual = r.create(ctx)
            ctx.ids[r.name] = actual.id
            ctx.actuals[r.name] = r.find(ctx) or actual
        else:
            r.check_changes(change.fields)
            progress(f"changing {r.kind} {r.name}: {', '.join(change.fields)}")
            assert step.actual is not None
            r.update(ctx, step.actual, change.fields)
        done.append(change)
    if plan.orphans:
        for f in plan.orphans:
            progress(f"deleting {f.label()}: no longer in the spec")
        delete_found(ctx, plan.orphans, progress=progress, timeout=delete_timeout)
        done += [Change("delete", f.kind, f"{f.name} ({f.id})") for f in plan.orphans]
    return done
