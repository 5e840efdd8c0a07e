"""--cloud local: the cluster's hosts are podman containers that boot systemd and run sshd.

``complete`` (the spec's local defaults) is pure and imported by completion; ``LocalCloud``
is loaded on first use, so that completing a spec does not load the cloud."""


def __getattr__(name: str):
    if name == "LocalCloud":
        from kpyops.clouds.local.cloud import LocalCloud

        return LocalCloud
    raise AttributeError(name)


__all__ = ["LocalCloud"]
