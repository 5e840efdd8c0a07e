"""What each cloud's machines can do, and what kpyops keeps for them: the one place that
knows. Completion, the inventory templates (as ``caps``), the lifecycle and the Cloud classes
read it; nothing else asks which cloud a spec names. Pure data: safe to import anywhere."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Capabilities:
    # The hosts own their kernel: swap off, kernel modules loaded, kernel-wide sysctls set.
    # Local hosts are containers sharing this machine's kernel, so nothing of that runs there.
    whole_kernel: bool
    # The open-files limit a service may ask for (an unprivileged container cannot raise it)
    nofile_limit: int
    # kpyops makes the machines' SSH key (kept in the state store) before any machine exists
    ssh_key_in_store: bool
    # kpyops records the machines' host keys in the store when they boot
    known_hosts_in_store: bool
    # the cloud serves every binary from the cluster's own files repository: no download URLs
    serves_artifacts: bool
    # this machine can open connections to the hosts' cluster addresses (not so for private
    # addresses in a VPC): validate checks etcd members straight
    reaches_hosts: bool
    # the spec lists every machine (name and address): neither completion nor the cloud makes
    # or names any
    lists_hosts: bool

    def as_dict(self) -> dict:
        return asdict(self)


CLOUDS: dict[str, Capabilities] = {
    "local": Capabilities(whole_kernel=False, nofile_limit=1024, ssh_key_in_store=True,
                          known_hosts_in_store=True, serves_artifacts=True, reaches_hosts=True,
                          lists_hosts=False),
    "baremetal": Capabilities(whole_kernel=True, nofile_limit=65536, ssh_key_in_store=False,
                              known_hosts_in_store=False, serves_artifacts=False,
                              reaches_hosts=True, lists_hosts=True),
    "aws": Capabilities(whole_kernel=True, nofile_limit=65536, ssh_key_in_store=False,
                        known_hosts_in_store=False, serves_artifacts=False, reaches_hosts=False,
                        lists_hosts=False),
}


def capabilities(cloud: str) -> Capabilities:
    return CLOUDS[cloud]
