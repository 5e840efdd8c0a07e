"""--cloud aws: the network, machines and API load balancer of a cluster, through boto3.

One module per idea: ``session`` (calls, retries, errors), ``resource`` (the find / compare /
create model), the resource kinds (``network``, ``security``, ``iam``, ``compute``,
``loadbalancer``, ``dns``), ``desired`` (spec -> resources), ``planner``, ``applier``,
``deleter``, ``inventory``, ``preflight``, ``doctor``, ``cloud`` (the Cloud interface) and
``complete`` (the spec's AWS defaults, pure: completion imports it without boto3, so the
rest loads on first use).
"""

from __future__ import annotations


def __getattr__(name: str):
    if name == "AwsCloud":
        from kpyops.clouds.aws.cloud import AwsCloud

        return AwsCloud
    if name == "AwsError":
        from kpyops.clouds.aws.errors import AwsError

        return AwsError
    raise AttributeError(name)


__all__ = ["AwsCloud", "AwsError"]
