"""--cloud aws: the network, machines and API load balancer of a cluster, through boto3.

One module per idea: ``session`` (calls, retries, errors), ``resource`` (the find / compare /
create model), the resource kinds (``network``, ``security``, ``iam``, ``compute``,
``loadbalancer``, ``dns``), ``desired`` (spec -> resources), ``planner``, ``applier``,
``deleter``, ``inventory``, ``preflight``, ``doctor``, and ``cloud`` (the Cloud interface).
"""

from __future__ import annotations

from kpyops.clouds.aws.cloud import AwsCloud
from kpyops.clouds.aws.errors import AwsError

__all__ = ["AwsCloud", "AwsError"]
