"""Delete what a cluster owns: in dependency order, each wave in parallel, naming what
blocks progress, and giving up with an error after a time limit (kops#383, #13612)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from kpyops.clouds.aws.errors import AwsError, DependencyError
from kpyops.clouds.aws.kinds import SCANNED
from kpyops.clouds.aws.resource import Context, Found
from kpyops.clouds.base import Progress

WAITING_STATES = ("shutting-down", "deleting")


class DeleteTimeout(AwsError):
    pass


def delete_found(
    ctx: Context,
    targets: list[Found],
    *,
    progress: Progress = lambda _m: None,
    timeout: float = 900,
    interval: float = 0.3,
    max_interval: float = 10,
    workers: int = 8,
) -> None:
    """Delete ``targets`` (from a scan) and wait until a fresh scan no longer finds them."""
    from kpyops.clouds.aws.planner import scan

    wanted = {(f.kind, f.id) for f in targets}
    kinds = tuple(k for k in SCANNED if any(f.kind == k for f in targets))
    deadline = time.monotonic() + timeout
    last_error: dict[tuple[str, str], str] = {}
    remaining = list(targets)
    while True:
        present = {f.kind for f in remaining}
        ready = [
            f for f in remaining
            if f.state not in WAITING_STATES
            and not set(SCANNED[f.kind].delete_after) & (present - {f.kind})
        ]
        for f in ready:  # reported from this thread: progress displays need not be thread-safe
            progress(f"{'untagging' if f.shared else 'deleting'} {f.label()}")
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(lambda f: _delete_one(ctx, f), ready))
        for f, err in zip(ready, results, strict=True):
            if err is not None:
                last_error[(f.kind, f.id)] = err
        remaining = [f for f in scan(ctx, kinds) if (f.kind, f.id) in wanted]
        if not remaining:
            return
        if time.monotonic() > deadline:
            raise DeleteTimeout(
                f"delete stopped after {timeout:.0f}s with {len(remaining)} resources left; "
                + blocker_text(ctx, remaining, last_error)
            )
        time.sleep(interval)
        interval = min(interval * 1.5, max_interval)


def _delete_one(ctx: Context, found: Found) -> str | None:
    try:
        SCANNED[found.kind].delete(ctx, found)
        return None
    except DependencyError as err:
        return str(err)
    except AwsError as err:
        if err.code.endswith("NotFound") or err.code == "NoSuchEntity":
            return str(err)  # gone already, most likely: the next scan tells
        raise


def blocker_text(ctx: Context, remaining: list[Found], last_error: dict) -> str:
    """Name the first resource that blocks progress, why, and what uses it."""
    present = {f.kind for f in remaining}
    # The blocker is one that could be deleted (nothing it waits for is left) but was not.
    free = [f for f in remaining if not set(SCANNED[f.kind].delete_after) & (present - {f.kind})]
    f = (free or remaining)[0]
    why = last_error.get((f.kind, f.id)) or (
        f"still {f.state}" if f.state else "still present"
    )
    try:
        users = SCANNED[f.kind].blockers(ctx, f)
    except AwsError:
        users = ""
    return f"blocked by {f.label()}: {why}" + (f"; {users}" if users else "")
