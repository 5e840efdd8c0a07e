"""create / update / get / delete cluster."""

from __future__ import annotations

import click

from kpyops import lifecycle
from kpyops.cli.names import CLUSTER_NAME
from kpyops.cli.node import delete_node
from kpyops.cli.output import ansible_progress, emit, fail, progress, spec_error, stderr, warn
from kpyops.clouds.base import CloudError
from kpyops.proxy.config import SUPPORTED_MODES as PROXY_MODES
from kpyops.run.ansible import PlaybookFailed, ansible_warnings
from kpyops.run.changes import format_host_changes
from kpyops.spec import SpecError, complete, loads, parse, to_data
from kpyops.spec.complete import DEFAULT_NODE_GROUP
from kpyops.state import ClusterNotFound, LockHeld, StateError, open_store


def _store(ctx: click.Context):
    return open_store(ctx.obj.get("state"))


def _spec_from_flags(name: str, file, cloud, control_planes, nodes, k8s_version, proxy_mode):
    """The user's spec: a file, or flags; flags given next to a file override it."""
    data = to_data(loads(file), full=False) if file else {}
    data.setdefault("apiVersion", "kpyops.io/v1alpha1")
    data.setdefault("kind", "Cluster")
    data["metadata"] = {**data.get("metadata", {}), "name": name}
    spec = data.setdefault("spec", {})
    if cloud:
        spec["cloud"] = cloud
    if control_planes is not None:
        spec.setdefault("controlPlane", {})["count"] = control_planes
    if nodes is not None:
        groups = spec.setdefault("nodeGroups", [])
        if not groups:  # none listed (or an empty list): the default group gets the count
            groups.append({"name": DEFAULT_NODE_GROUP})
        groups[0]["count"] = nodes
    if k8s_version:
        spec["kubernetesVersion"] = k8s_version
    if proxy_mode:
        spec.setdefault("kubeProxy", {})["mode"] = proxy_mode
    return parse(data)


TARGET = click.option("--target", type=click.Choice(["all", "cloud"]), default="all",
                      show_default=True,
                      help="With --yes: cloud makes the machines and the inventory only; "
                      "all also converges cluster.yml on the hosts.")


def _converge(store, user, verbose: int, target: str = "all") -> None:
    try:
        with ansible_progress(verbose) as callbacks:
            applied = lifecycle.update(store, user, progress, verbosity=verbose,
                                       converge=target == "all", **callbacks)
    except (CloudError, LockHeld, StateError) as err:
        fail(str(err))
    except PlaybookFailed as err:
        if not verbose:
            for line in err.tail:
                stderr.print(line, markup=False, highlight=False)
        fail(f"{err} (run again with -v to see all of Ansible's output)")
    result = applied.result
    if result is None:
        for ch in applied.cloud:
            click.echo(str(ch))
        progress(f"machines and inventory ready ({len(applied.cloud)} change(s)); hosts not "
                 f"converged: kpyops update cluster {user.name} --yes")
        return
    for warning in ansible_warnings(result.output):
        warn(warning)
    if applied.cloud:
        click.echo("machines changed:")
        for ch in applied.cloud:
            click.echo(str(ch))
    lines = format_host_changes(applied.hosts, diffs=False)
    if lines:
        click.echo("hosts changed:")
        click.echo("\n".join(lines))
    progress(f"converged in {result.seconds:.0f}s: "
             + ", ".join(f"{h} changed={r.get('changed', 0)}" for h, r in result.recap.items()))


def _check_hosts(store, user, cloud_changes, verbose: int) -> None:
    """What a converge would change on each host, checked against the proposed inventory."""
    try:
        with ansible_progress(verbose) as callbacks:
            check = lifecycle.check_hosts(store, user, cloud_changes=cloud_changes,
                                          verbosity=verbose, **callbacks)
    except PlaybookFailed as err:
        for line in err.tail:
            stderr.print(line, markup=False, highlight=False)
        fail(f"the check run failed: {err}")
    except (CloudError, LockHeld, StateError) as err:
        fail(str(err))
    playbook = "cluster.yml"
    if check.added:
        playbook = lifecycle.NEIGHBOURS_PLAYBOOK
        progress(f"nodes added only: cluster.yml would run on {', '.join(check.added)}; then the "
                 f"other hosts only get their names and pod routes ({playbook})")
    for host, why in check.not_checked.items():
        click.echo(f"  ? host {host}: not checked: {why}")
    if not check.changed:
        progress(f"hosts: {playbook} would change nothing"
                 + (" on the hosts it could check" if check.not_checked else ""))
        return
    click.echo(f"hosts ({playbook} --check --diff against the proposed inventory):")
    click.echo("\n".join(format_host_changes(check.hosts)))
    disruptive = [h for h, r in check.changed.items() if r.drains or any(
        word in name.lower() for name in [*r.handlers, *r.tasks] for word in ("restart", "stop "))]
    if disruptive:
        progress(f"{', '.join(disruptive)} would restart a service or drain: to apply it host by "
                 f"host, drained and validated in between, store the spec with `update cluster "
                 f"{user.name} -f FILE --yes --target cloud`, then `rolling-update cluster {user.name}`")


@click.group("create")
def create() -> None:
    """Create a resource."""


@create.command("cluster")
@click.argument("name", type=CLUSTER_NAME)
@click.option("-f", "--file", type=click.File("rb"), help="Cluster spec (YAML).")
@click.option("--cloud", type=click.Choice(["local", "baremetal", "aws"]), help="Where machines come from [local].")
@click.option("--control-planes", type=int, help="Control-plane count (1, 3 or 5).")
@click.option("--nodes", type=int, help="Worker count of the first node group.")
@click.option("--kubernetes-version", "k8s_version", help="Kubernetes version.")
@click.option("--proxy-mode", type=click.Choice(PROXY_MODES), help="Service proxy mode.")
@click.option("--dry-run", is_flag=True, help="Print the completed spec; write nothing.")
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml")
@click.option("--yes", is_flag=True, help="Also provision the machines and converge cluster.yml.")
@TARGET
@click.pass_context
def create_cluster(ctx, name, file, cloud, control_planes, nodes, k8s_version, proxy_mode,
                   dry_run, output, yes, target) -> None:
    """Write a new cluster spec to the state store (and with --yes, build it)."""
    verbose = ctx.obj["verbose"]
    try:
        user = _spec_from_flags(name, file, cloud, control_planes, nodes, k8s_version, proxy_mode)
        store = _store(ctx)
        if dry_run:  # what create would write, the cloud's choices included; reads only
            from kpyops.clouds import get_cloud

            emit(to_data(complete(get_cloud(user.spec.cloud, store).choose(user))), output)
            return
        lifecycle.create(store, user, progress)
        user = lifecycle.load_cluster(store, name, completed=False)  # with the cloud's choices
    except SpecError as err:
        spec_error(err)
    except (lifecycle.ClusterExists, LockHeld, StateError, CloudError) as err:
        fail(str(err))
    if yes:
        _converge(store, user, verbose, target)
    else:
        progress(f"to build it: kpyops update cluster {name} --yes")


@click.group("update")
def update() -> None:
    """Change a resource to match its spec."""


@update.command("cluster")
@click.argument("name", type=CLUSTER_NAME)
@click.option("-f", "--file", type=click.File("rb"), help="A new spec for the cluster.")
@click.option("--yes", is_flag=True, help="Apply the plan: machines, then cluster.yml.")
@click.option("--hosts", "check_hosts", is_flag=True,
              help="Also run cluster.yml in check mode: what a converge would change on the hosts.")
@TARGET
@click.pass_context
def update_cluster(ctx, name, file, yes, check_hosts, target) -> None:
    """Show what would change; with --yes, apply it and converge."""
    store = _store(ctx)
    try:
        user = loads(file) if file else lifecycle.load_cluster(store, name, completed=False)
        if user.name != name:
            raise SpecError("metadata.name", f"is {user.name!r}, expected {name!r}")
        if not store.exists(name):
            raise ClusterNotFound(f"cluster {name!r} not found in {store.url}")
        plan = lifecycle.plan(store, user)
    except SpecError as err:
        spec_error(err)
    except (StateError, LockHeld, CloudError) as err:
        fail(str(err))
    if plan.empty:
        progress("machines and inventory match the spec")
    for ch in plan.cloud:
        click.echo(str(ch))
    for diff in plan.inventory.values():
        click.echo(diff, nl=False)
    if not plan.empty:
        progress(plan_summary(plan.cloud, len(plan.inventory)))
    if check_hosts and not yes:
        _check_hosts(store, user, plan.cloud, ctx.obj["verbose"])
    if yes:
        _converge(store, user, ctx.obj["verbose"], target)
    elif not plan.empty:
        progress("run again with --yes to apply (cluster.yml converges hosts either way)")


def plan_summary(changes, inventory_files: int) -> str:
    """One line of counts closing a plan: 'Plan: 1 to create, 0 to modify, 2 to delete; ...'."""
    count = {a: sum(c.action == a for c in changes) for a in ("create", "modify", "delete")}
    other = len(changes) - sum(count.values())
    line = f"Plan: {count['create']} to create, {count['modify']} to modify, {count['delete']} to delete"
    if other:
        line += f", {other} other"
    return f"{line}; {inventory_files} inventory file(s) to change"


@click.group("get")
def get() -> None:
    """Show resources."""


@get.command("clusters")
@click.pass_context
def get_clusters(ctx) -> None:
    """List clusters in the state store."""
    store = _store(ctx)
    names = store.clusters()
    if not names:
        progress(f"no clusters in {store.url}")
    click.echo(f"{'NAME':<24}{'CLOUD':<12}{'CONTROL PLANES':<16}NODES")
    for name in names:
        c = lifecycle.load_cluster(store, name)
        nodes = sum(g.count or 0 for g in c.spec.node_groups)
        click.echo(f"{name:<24}{c.spec.cloud:<12}{c.spec.control_plane.count!s:<16}{nodes}")


@get.command("cluster")
@click.argument("name", type=CLUSTER_NAME)
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml")
@click.option("--full", is_flag=True, help="The completed spec, every default shown.")
@click.pass_context
def get_cluster(ctx, name, output, full) -> None:
    """Print a cluster's spec."""
    store = _store(ctx)
    try:
        c = lifecycle.load_cluster(store, name, completed=full)
    except StateError as err:
        fail(str(err))
    emit(to_data(c, full=full), output)
    progress(f"API endpoint: {_api_endpoint(store, name)}")  # stderr: stdout stays the spec


def _api_endpoint(store, name: str) -> str:
    from kpyops.clouds import get_cloud
    from kpyops.kubeconfig import KubeconfigError, api_server_url

    completed = lifecycle.load_cluster(store, name)
    try:
        cloud = get_cloud(completed.spec.cloud, store)
        return api_server_url(completed, cloud.api_endpoint(completed))
    except (KubeconfigError, CloudError) as err:
        return f"not known yet ({err})"


@click.group("delete")
def delete() -> None:
    """Delete a resource."""


delete.add_command(delete_node)


@delete.command("cluster")
@click.argument("name", type=CLUSTER_NAME)
@click.option("--yes", is_flag=True, help="Really delete.")
@click.pass_context
def delete_cluster(ctx, name, yes) -> None:
    """Delete a cluster's machines and its state."""
    store = _store(ctx)
    try:
        cluster = lifecycle.load_cluster(store, name)
        from kpyops.clouds import get_cloud

        for ch in get_cloud(cluster.spec.cloud, store).plan_delete(cluster):
            click.echo(str(ch))
        click.echo(f"  - state {store.url}/clusters/{name}")
        if not yes:
            progress("run again with --yes to delete")
            return
        lifecycle.delete(store, name, progress)
    except (StateError, LockHeld, CloudError) as err:
        fail(str(err))
    progress(f"cluster {name} deleted")


commands = [create, update, get, delete]
