"""AwsCloud: the Cloud interface for --cloud aws, tying model, planner, applier, deleter."""

from __future__ import annotations

import os
from collections.abc import Callable

import boto3

from kpyops.clouds.aws.applier import apply_resources
from kpyops.clouds.aws.deleter import delete_found
from kpyops.clouds.aws.desired import desired_resources, lb_name
from kpyops.clouds.aws.errors import AwsError
from kpyops.clouds.aws.inventory import inventory_hosts
from kpyops.clouds.aws.planner import make_plan, scan
from kpyops.clouds.aws.preflight import preflight
from kpyops.clouds.aws.resource import TAG_CLUSTER, TAG_OWNER, Context, tag_dict
from kpyops.clouds.aws.session import AwsSession
from kpyops.clouds.base import Change, Cloud, InventoryHost, Progress
from kpyops.spec.complete import complete
from kpyops.spec.model import Aws, Cluster
from kpyops.state.base import CLUSTER_ID, StateStore

SessionFactory = Callable[..., AwsSession]


def refuse_foreign(ctx: Context) -> None:
    """A VPC tagged for a cluster of this name that another state store holds: its names
    (load balancer, IAM roles) would collide, and it must never be planned, adopted or
    deleted from here."""
    if ctx.owner is None:
        return
    vpcs = ctx.call("ec2", "describe_vpcs",
                    Filters=[{"Name": f"tag:{TAG_CLUSTER}", "Values": [ctx.cluster]}])["Vpcs"]
    for vpc in vpcs:
        tags = tag_dict(vpc.get("Tags"))
        if ctx.foreign(tags):
            raise AwsError(f"VPC {vpc['VpcId']} belongs to a cluster named {ctx.cluster} kept in "
                           f"another state store (owner {tags.get(TAG_OWNER) or 'unknown'}); this "
                           "store's cluster will not plan, adopt or delete it: use another name")


class AwsCloud(Cloud):
    name = "aws"

    def __init__(
        self,
        store: StateStore,
        progress: Progress = lambda _msg: None,
        *,
        session_factory: SessionFactory = AwsSession,
        delete_timeout: float = 900,
    ):
        super().__init__(store, progress)
        self.session_factory = session_factory
        self.delete_timeout = delete_timeout

    def choose(self, user: Cluster) -> Cluster:
        """A spec without ``spec.aws`` takes its region from the standard AWS settings
        (AWS_REGION, AWS_DEFAULT_REGION, then the profile's region), as the AWS CLI does."""
        if user.spec.aws is not None:
            return user
        region = (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                  or boto3.session.Session().region_name)
        if not region:
            return user  # completion names what is missing
        chosen = user.model_copy(deep=True)
        chosen.spec.aws = Aws(region=region)
        return chosen

    def preflight(self, cluster: Cluster) -> None:
        """Credentials, zones, instance types and the image, read before create stores the spec."""
        cluster, ctx = self.context(cluster, read_only=True)
        preflight(ctx, cluster)
        if ctx.owner is None:  # a new cluster: nothing may carry its name yet
            vpcs = ctx.call("ec2", "describe_vpcs", Filters=[
                {"Name": f"tag:{TAG_CLUSTER}", "Values": [cluster.name]}])["Vpcs"]
            if vpcs:
                raise AwsError(f"a cluster named {cluster.name} already has resources in this "
                               f"account (VPC {vpcs[0]['VpcId']}), kept in another state store: "
                               "use another name")

    def context(self, cluster: Cluster, *, read_only: bool) -> tuple[Cluster, Context]:
        cluster = complete(cluster)
        aws = cluster.spec.aws
        assert aws is not None
        owner = (self.store.read_text(cluster.name, CLUSTER_ID).strip()
                 if self.store.exists(cluster.name, CLUSTER_ID) else None)
        ctx = Context(self.session_factory(aws.region, read_only=read_only), cluster.name,
                      aws.extra_tags, owner=owner)
        if aws.dns is not None and aws.dns.record:
            ctx.dns = (aws.dns.zone, aws.dns.record, lb_name(cluster.name))
        refuse_foreign(ctx)
        return cluster, ctx

    def _public_key(self, cluster: str) -> Callable[[], str]:
        def make() -> str:
            from kpyops.clouds.local.sshkey import ensure_ssh_key

            return ensure_ssh_key(self.store, cluster)

        return make

    def _resources(self, cluster: Cluster, ctx: Context):
        image = preflight(ctx, cluster)
        return desired_resources(cluster, image, self._public_key(cluster.name))

    def plan(self, cluster: Cluster) -> list[Change]:
        """What apply would change. Only Describe/List/Get calls; nothing is written."""
        cluster, ctx = self.context(cluster, read_only=True)
        return make_plan(ctx, self._resources(cluster, ctx)).changes

    def apply(self, cluster: Cluster) -> list[Change]:
        cluster, ctx = self.context(cluster, read_only=False)
        resources = self._resources(cluster, ctx)
        return apply_resources(ctx, resources, self.progress, delete_timeout=self.delete_timeout)

    def plan_delete(self, cluster: Cluster) -> list[Change]:
        cluster, ctx = self.context(cluster, read_only=True)
        return [
            Change("untag" if f.shared else "delete", f.kind, f"{f.name} ({f.id})")
            for f in scan(ctx)
        ]

    def delete(self, cluster: Cluster) -> list[Change]:
        cluster, ctx = self.context(cluster, read_only=False)
        found = scan(ctx)
        if found:
            delete_found(ctx, found, progress=self.progress, timeout=self.delete_timeout)
        return [Change("untag" if f.shared else "delete", f.kind, f"{f.name} ({f.id})") for f in found]

    def inventory_hosts(self, cluster: Cluster) -> list[InventoryHost]:
        cluster, ctx = self.context(cluster, read_only=True)
        aws = cluster.spec.aws
        assert aws is not None
        return inventory_hosts(ctx, ssh_user=cluster.spec.ssh.user, private=aws.private_subnets)

    def api_endpoint(self, cluster: Cluster) -> str | None:
        """The API's name for certificates and kubeconfigs: the DNS record when the spec
        has one, else the load balancer's DNS name (None before apply)."""
        cluster, ctx = self.context(cluster, read_only=True)
        aws = cluster.spec.aws
        assert aws is not None
        if aws.dns is not None and aws.dns.record:
            return aws.dns.record
        from kpyops.clouds.aws.loadbalancer import LoadBalancer

        actual = LoadBalancer("lb-api", lb_name=lb_name(cluster.name)).find(ctx)
        return actual.raw.get("DNSName") if actual else None
