"""Completion of a --cloud aws spec: the part of ``kpyops.spec.complete`` that only AWS
clusters need, next to their cloud. Pure (no I/O): the region a new cluster gets from the
environment is chosen by ``AwsCloud.choose`` at create, before completion."""

from __future__ import annotations

import ipaddress

from kpyops.spec.errors import SpecError
from kpyops.spec.hosts import all_hosts
from kpyops.spec.model import Cluster

AWS_DEFAULT_CIDR = ipaddress.IPv4Network("172.20.0.0/16")  # kops' default VPC range


def complete_aws(cluster: Cluster, wanted: int) -> None:
    """Defaults of --cloud aws (changed in place). Machines are counted, not listed: the
    cloud names them at apply, so completion places none (``wanted`` is not used)."""
    s = cluster.spec
    if s.aws is None:
        raise SpecError("spec.aws", "cloud aws needs a region: spec.aws.region, or AWS_REGION "
                        "(or a profile's region) when the cluster is created")
    for path, _host in all_hosts(cluster):
        raise SpecError(path, "on aws machines are counted (count), not listed (hosts)")
    aws = s.aws
    aws.zones = aws.zones or [f"{aws.region}a"]
    if aws.cidr is None:
        aws.cidr = AWS_DEFAULT_CIDR
    overlaps = [("spec.aws.cidr", f"{aws.cidr} overlaps {label} {cidr}")
                for label, cidr in s.networking.ranges() if aws.cidr.overlaps(cidr)]
    if overlaps:
        raise SpecError(problems=overlaps)
    if aws.dns is not None:
        aws.dns.record = aws.dns.record or f"api.{cluster.metadata.name}.{aws.dns.zone.rstrip('.')}"
        # The record is known before anything exists; without one the API address is the
        # load balancer's name, known after apply (AwsCloud.api_endpoint).
        s.control_plane.api_load_balancer.type = "external"
        s.control_plane.api_load_balancer.address = aws.dns.record
    if s.ssh.user == "root":  # the spec default; cloud images log in as their own user
        s.ssh.user = aws.ssh_user
