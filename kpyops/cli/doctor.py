"""doctor: check, before anything is created, that a cloud can be used from here."""

from __future__ import annotations

import sys

import click

from kpyops.cli.names import CLUSTER_NAME
from kpyops.cli.output import fail, spec_error
from kpyops.spec import SpecError, complete, loads


@click.command("doctor")
@click.option("--cloud", type=click.Choice(["aws"]), default="aws", show_default=True,
              help="Which cloud to check.")
@click.option("--region", help="Region to check (default: the spec's, else boto3's).")
@click.option("-f", "--filename", "file", type=click.File("rb"), help="A cluster spec to check too "
              "(zones, instance types, image).")
@click.option("--state-bucket", help="An S3 state store bucket to check (versioning, "
              "public access block, encryption).")
@click.argument("name", required=False, type=CLUSTER_NAME)
@click.pass_context
def command(ctx: click.Context, cloud: str, region: str | None, file, state_bucket: str | None,
            name: str | None) -> None:
    """Check credentials, the IAM actions create and delete need, and the spec's zones,
    instance types and image. Credentials come from boto3's standard chain only."""
    from kpyops.clouds.aws.doctor import run_doctor
    from kpyops.clouds.aws.errors import AwsError
    from kpyops.clouds.aws.resource import Context
    from kpyops.clouds.aws.session import AwsSession

    cluster = None
    try:
        if file is not None:
            cluster = complete(loads(file.read()))
        elif name:
            from kpyops import lifecycle
            from kpyops.state import open_store

            cluster = lifecycle.load_cluster(open_store((ctx.obj or {}).get("state")), name)
    except SpecError as err:
        spec_error(err)
    except Exception as err:  # a missing cluster, an unreadable store: one line
        fail(str(err))
    aws = cluster.spec.aws if cluster is not None else None
    if cluster is not None and aws is None:
        fail(f"cluster {cluster.name} is not an aws cluster (spec.cloud: {cluster.spec.cloud})")
    region = region or (aws.region if aws else None)
    if not region:
        import boto3

        region = boto3.session.Session().region_name
    if not region:
        fail("no region: give --region, a spec, or set AWS_REGION")
    bucket = state_bucket or (aws.state_bucket if aws else None)
    state = (ctx.obj or {}).get("state") or ""
    if not bucket and state.startswith("s3://"):
        bucket = state.removeprefix("s3://").split("/")[0]
    try:
        session = AwsSession(region, read_only=True)
        checks = run_doctor(Context(session, cluster.name if cluster else "-"), cluster,
                            region=region, state_bucket=bucket)
    except AwsError as err:
        fail(str(err))
    for check in checks:
        click.echo(str(check))
    sys.exit(0 if all(c.ok for c in checks) else 1)
