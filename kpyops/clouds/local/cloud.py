"""Local machines: one podman network per cluster, one systemd container per host.

Hosts get the fixed addresses of the completed spec, the cluster's SSH key in root's
authorized_keys, and their host keys are recorded in the state store's known_hosts, so
Ansible connects over real SSH with host-key checking on.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from pathlib import Path

from kpyops.artifacts.catalog import PROBE
from kpyops.artifacts.images import ImageError, build_and_push, upstream_reference
from kpyops.artifacts.needs import build_for, missing_files, missing_images
from kpyops.clouds.base import Change, Cloud, CloudError
from kpyops.clouds.local.complete import (
    UPSTREAM_REGISTRY,
    local_files_url,
    local_registry_url,
    local_subnets,
)
from kpyops.clouds.local.files import FILES_DIR, PORT, REGISTRY_PORT, port_open, start_files_server
from kpyops.clouds.local.image import ensure_image
from kpyops.clouds.local.podman import Podman
from kpyops.clouds.local.sshkey import ensure_ssh_key
from kpyops.spec.hosts import all_hosts
from kpyops.spec.model import Cluster, Local

LABEL = "kpyops.io/cluster"
CONTAINERD_ROOT = "/var/lib/containerd"
KNOWN_HOSTS = "ssh/known_hosts"
BOOT_TIMEOUT_S = 300  # systemd in a test host boots slowly on a loaded 2-core machine
# ansible.cfg's control_path_dir, with ssh's %C (hash of local host, remote host, port, user)
CONTROL_PATH = str(Path.home() / ".ansible" / "cp" / "%C")


def network_name(cluster: Cluster) -> str:
    return f"kpyops-{cluster.name}"


class LocalCloud(Cloud):
    name = "local"

    def __init__(self, store, progress=lambda _m: None, podman: Podman | None = None):
        super().__init__(store, progress)
        self.podman = podman or Podman()

    # -- reading -------------------------------------------------------------------------
    def probe_image(self, cluster: Cluster) -> str | None:
        """The probe image, when the cluster pulls registry.k8s.io through the registry this
        cloud fills (which then has it: apply pushes it with the other images)."""
        local = cluster.spec.local
        mirrors = cluster.spec.container_runtime.registry_mirrors.get(UPSTREAM_REGISTRY, [])
        if local is None or local.subnet is None or local_registry_url(local.subnet) not in mirrors:
            return None
        return upstream_reference("probe", PROBE.version())

    def choose(self, user: Cluster) -> Cluster:
        """A new cluster without ``spec.local.subnet`` gets the first /24 of its candidates
        (its name's own first) that no podman network or host route uses."""
        if user.spec.local is not None and user.spec.local.subnet is not None:
            return user
        used = used_subnets(self.podman)
        for subnet in local_subnets(user.name):
            if not any(subnet.overlaps(u) for u in used):
                chosen = user.model_copy(deep=True)
                chosen.spec.local = chosen.spec.local or Local()
                chosen.spec.local.subnet = subnet
                return chosen
        raise CloudError("every local subnet (10.213.1.0/24 to 10.213.250.0/24) is in use: "
                         "delete a local cluster or set spec.local.subnet")

    def _wanted(self, cluster: Cluster) -> dict[str, str]:
        return {h.name: str(h.address) for _, h in all_hosts(cluster)}

    def _existing(self, cluster: Cluster) -> dict[str, dict]:
        return {c["Names"][0]: c for c in self.podman.containers(f"{LABEL}={cluster.name}")}

    def plan(self, cluster: Cluster) -> list[Change]:
        wanted, existing = self._wanted(cluster), self._existing(cluster)
        files = files_host(cluster)
        if files:
            files_container = existing.pop(files[0], None)
        changes = []
        if not self.podman.network_exists(network_name(cluster)):
            subnet = cluster.spec.local.subnet
            clash = [f"{owner} ({u})" for u, owner in used_subnets(self.podman).items()
                     if subnet.overlaps(u)]
            if clash:
                raise CloudError(f"spec.local.subnet {subnet} is already used by "
                                 f"{', '.join(clash)}: choose another subnet")
            changes.append(Change("create", "network", network_name(cluster),
                                  {"subnet": (None, str(cluster.spec.local.subnet))}))
        for name, ip in wanted.items():
            if name not in existing:
                changes.append(Change("create", "container", name, {"address": (None, ip)}))
            elif existing[name].get("State") != "running":
                changes.append(Change("modify", "container", name,
                                      {"state": (existing[name].get("State"), "running")}))
        if files and (files_container is None or files_container.get("State") != "running"):
            changes.append(Change("create", "files-server", files[0],
                                  {"address": (None, files[1]), "serves": (None, str(FILES_DIR))}))
        elif files and (missing := missing_files(cluster) + registry_lacks(cluster, files[1])):
            changes.append(Change("modify", "files-server", files[0],
                                  {"serves": (None, ", ".join(missing))}))
        changes += [Change("delete", "container", n) for n in existing if n not in wanted]
        return changes

    def plan_delete(self, cluster: Cluster) -> list[Change]:
        changes = [Change("delete", "container", n) for n in self._existing(cluster)]
        if self.podman.network_exists(network_name(cluster)):
            changes.append(Change("delete", "network", network_name(cluster)))
        return changes

    # -- changing ------------------------------------------------------------------------
    def apply(self, cluster: Cluster) -> list[Change]:
        changes = self.plan(cluster)
        if not changes:
            return []
        image = cluster.spec.local.image or ensure_image(self.podman, log=self.progress)
        pubkey = ensure_ssh_key(self.store, cluster.name)
        net = network_name(cluster)
        for ch in changes:
            if ch.kind == "network":
                self.progress(f"creating network {net} ({cluster.spec.local.subnet})")
                self.podman.create_network(net, str(cluster.spec.local.subnet), {LABEL: cluster.name})
            elif ch.kind == "files-server":
                self._start_files_server(cluster, image, net)
            elif ch.action == "create":
                self.progress(f"starting host {ch.name}")
                self.podman.start_host(
                    name=ch.name, image=image, network=net,
                    ip=self._wanted(cluster)[ch.name], labels={LABEL: cluster.name},
                    # containerd's overlayfs snapshots cannot sit on the container's own
                    # overlay root: an anonymous volume (removed with the host) holds them
                    volumes=[CONTAINERD_ROOT],
                )
            elif ch.action == "modify":
                self.progress(f"starting host {ch.name} (it was {ch.fields['state'][0]})")
                self.podman.run(["start", ch.name])
            elif ch.action == "delete":
                self.progress(f"removing host {ch.name}")
                self._remove_host(ch.name)
        wanted = self._wanted(cluster)
        for name, ip in wanted.items():
            wait_booted(self.podman, name, ip)
            self._authorize(name, pubkey)
        self._record_host_keys(cluster, wanted)
        return changes

    def delete(self, cluster: Cluster) -> list[Change]:
        changes = self.plan_delete(cluster)
        for ch in changes:
            self.progress(f"removing {ch.kind} {ch.name}")
            if ch.kind == "container":
                self._remove_host(ch.name)
            else:
                self.podman.remove_network(ch.name)
        return changes

    # -- helpers -------------------------------------------------------------------------
    def _start_files_server(self, cluster: Cluster, image: str, net: str) -> None:
        """The cluster's files repository and registry, filled with what the spec needs
        (built from Go modules on first use, then cached)."""
        name, ip = files_host(cluster)
        built = build_for(cluster, progress=self.progress)
        if not port_open(ip, PORT) or not port_open(ip, REGISTRY_PORT):
            self.progress(f"starting files repository and registry {name} ({ip}:{PORT}, :{REGISTRY_PORT})")
            start_files_server(self.podman, name=name, ip=ip, image=image, network=net,
                               labels={LABEL: cluster.name})
        for b in built:
            build_and_push(b, f"{ip}:{REGISTRY_PORT}", progress=self.progress)

    def _remove_host(self, name: str) -> None:
        """Remove a host and end Ansible's persistent SSH connection to its address, so a
        host recreated at that address is not reached through a dead master connection."""
        info = self.podman.run(["inspect", name, "--format",
                                "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"],
                               check=False).split()
        self.podman.remove_container(name)
        for ip in info:
            subprocess.run(["ssh", "-o", f"ControlPath={CONTROL_PATH}", "-O", "exit", f"root@{ip}"],
                           capture_output=True, timeout=10)

    def _authorize(self, name: str, pubkey: str) -> None:
        self.podman.exec(name, ["sh", "-c",
            "install -d -m 0700 /root/.ssh && "
            f"grep -qxF '{pubkey}' /root/.ssh/authorized_keys 2>/dev/null || "
            f"echo '{pubkey}' >> /root/.ssh/authorized_keys; chmod 0600 /root/.ssh/authorized_keys"])

    def _record_host_keys(self, cluster: Cluster, wanted: dict[str, str]) -> None:
        lines = []
        for name, ip in sorted(wanted.items()):
            key = self.podman.exec(name, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).split()
            lines.append(f"{name},{ip} {key[0]} {key[1]}")
        self.store.write_text(cluster.name, KNOWN_HOSTS, "\n".join(lines) + "\n")


def registry_lacks(cluster: Cluster, ip: str) -> list[str]:
    """Images the cluster's running registry lacks (a new probe, pause or CoreDNS version)."""
    try:
        return missing_images(cluster, f"{ip}:{REGISTRY_PORT}")
    except ImageError:
        return []  # the registry does not answer: apply starts it and pushes everything


def used_subnets(podman: Podman) -> dict[ipaddress.IPv4Network, str]:
    """The IPv4 subnets this machine's podman networks and routes use, and who uses each."""
    used: dict[ipaddress.IPv4Network, str] = {}
    try:
        networks = podman.network_subnets()
    except FileNotFoundError:  # no podman yet: no podman network either
        networks = {}
    for name, subnets in networks.items():
        for s in subnets:
            net = ipaddress.ip_network(s, strict=False)
            if isinstance(net, ipaddress.IPv4Network):
                used[net] = f"podman network {name}"
    for dst, dev in host_routes():
        used.setdefault(dst, f"a route via {dev}")
    return used


def host_routes() -> list[tuple[ipaddress.IPv4Network, str]]:
    """This machine's IPv4 routes other than the default: (destination, device)."""
    out = subprocess.run(["ip", "-json", "-4", "route", "show"], capture_output=True,
                         text=True, check=False).stdout
    return [(ipaddress.IPv4Network(r["dst"], strict=False), r.get("dev", "?"))
            for r in json.loads(out or "[]") if r.get("dst", "default") != "default"]


def wait_booted(podman: Podman, name: str, ip: str, timeout: float = BOOT_TIMEOUT_S) -> None:
    """Wait for a host's systemd to be up (running or degraded) and its sshd to answer."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = podman.exec(name, ["systemctl", "is-system-running"], check=False).strip()
        if state in ("running", "degraded") and port_open(ip, 22):
            return
        time.sleep(0.5)
    raise RuntimeError(f"host {name} did not boot within {timeout}s (systemd: {state!r})")


def files_host(cluster: Cluster) -> tuple[str, str] | None:
    """(name, address) of the files server, when the spec uses the local files repository."""
    local = cluster.spec.local
    if local is None or local.subnet is None:
        return None
    ip = str(local.subnet.network_address + 2)
    if cluster.spec.artifacts.files_repository != local_files_url(local.subnet):
        return None
    return f"{cluster.name}-files", ip
