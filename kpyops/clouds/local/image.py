"""The local test-host image: Debian bookworm with systemd, sshd and python3.

Built with debootstrap and ``podman import`` (no registry), cached by tag: the tag carries a
hash of the package list and build steps, so a change to either builds a new image.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from kpyops.clouds.local.podman import Podman

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# What every test host needs before Ansible can manage it: an init, sshd, python3 for
# modules, python3-apt for ansible.builtin.apt, kmod/procps/iproute2 for kernel work.
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-apt",
    "kmod",
    "procps",
    "iproute2",
    "iptables",
    "ca-certificates",
    "sudo",
    "curl",
)
# Files written into the root file system after debootstrap; the hash covers them too.
SETUP_SCRIPT = """
set -e
# sshd: keys only, root allowed with a key (the test hosts' only user is root)
printf 'PermitRootLogin prohibit-password\\nPasswordAuthentication no\\nUseDNS no\\n' \
  > /etc/ssh/sshd_config.d/kpyops.conf
rm -f /etc/ssh/ssh_host_*
# host keys are made at first boot, so every container has its own
mkdir -p /etc/systemd/system/ssh.service.d
printf '[Service]\\nExecStartPre=\\nExecStartPre=/usr/bin/ssh-keygen -A\\nExecStartPre=/usr/sbin/sshd -t\\n' \
  > /etc/systemd/system/ssh.service.d/keygen.conf
systemctl enable ssh.service
# units that cannot work in a container and only slow boot down
for u in systemd-networkd-wait-online.service getty@tty1.service console-getty.service \
         systemd-remount-fs.service sys-kernel-config.mount sys-kernel-debug.mount; do
  systemctl mask "$u" >/dev/null 2>&1 || true
done
echo 'localhost' > /etc/hostname
# a fresh package index, so hosts install packages like any new Debian machine
printf 'deb http://deb.debian.org/debian bookworm main\ndeb http://deb.debian.org/debian bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' > /etc/apt/sources.list
apt-get update -qq
apt-get clean
"""

IMAGE_REPO = "localhost/kpyops-node"


def image_tag() -> str:
    digest = hashlib.sha256(
        "\n".join([SUITE, MIRROR, *PACKAGES, SETUP_SCRIPT]).encode()
    ).hexdigest()[:12]
    return f"{IMAGE_REPO}:{SUITE}-{digest}"


def ensure_image(podman: Podman, log=print) -> str:
    """Return the image reference, building it first if it is not cached."""
    tag = image_tag()
    if podman.image_exists(tag):
        return tag
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is not installed: apt-get install debootstrap")
    with tempfile.TemporaryDirectory(prefix="kpyops-rootfs-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        log(f"building test-host image {tag} with debootstrap (about a minute)")
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(rootfs),
                MIRROR,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(["chroot", str(rootfs), "/bin/sh", "-c", SETUP_SCRIPT], check=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        podman.run(
            ["import", "--change", 'CMD ["/sbin/init"]', "-", tag],
            stdin=tar.stdout,
        )
        if tar.wait() != 0:
            raise RuntimeError("tar of the root file system failed")
    return tag
