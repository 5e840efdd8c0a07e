"""--cloud local: the cluster's hosts are podman containers that boot systemd and run sshd."""

from kpyops.clouds.local.cloud import LocalCloud

__all__ = ["LocalCloud"]
