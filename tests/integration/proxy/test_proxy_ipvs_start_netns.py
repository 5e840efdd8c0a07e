"""Starting in ipvs mode on a kernel without IPVS fails at once, saying why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kpyops.proxy.ipvs.capability import ipvs_family_present

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

KPYOPS = str(Path(sys.executable).parent / "kpyops")
NS = "kpa-pxipvs"


@pytest.mark.skipif(ipvs_family_present(), reason="this kernel has IPVS")
def test_ipvs_mode_without_ipvs_says_so(tmp_path):
    config = tmp_path / "kp.yaml"
    config.write_text(
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\n"
    )
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        proc = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                NS,
                KPYOPS,
                "proxy",
                "--config",
                str(config),
                "--services-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        saved = subprocess.run(
            ["ip", "netns", "exec", NS, "iptables-save"], capture_output=True, text=True
        ).stdout
    finally:
        subprocess.run(["ip", "netns", "del", NS], check=False)
    assert proc.returncode == 1
    assert "IPVS mode cannot run on this node" in proc.stderr
    assert "ip_vs" in proc.stderr and "mode: nftables" in proc.stderr
    assert "KUBE-" not in saved  # nothing was programmed
