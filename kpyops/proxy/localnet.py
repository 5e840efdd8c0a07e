"""net.ipv4.conf.all.route_localnet: set for localhost NodePorts, put back by ``--cleanup``.

NodePorts on 127.0.0.1 need ``route_localnet=1`` (kube-proxy sets it too). kube-proxy never
puts the old value back; kpyops does: the first time it changes the value, it writes the value
it found to ``<state dir>/route_localnet.orig``. ``--cleanup`` writes that value back and
removes the file. A restart finds the file and keeps it, so the value recorded is the one from
before the proxy ever ran; a node where the value already was 1 gets no file, and cleanup
leaves the sysctl alone.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

ROUTE_LOCALNET = Path("/proc/sys/net/ipv4/conf/all/route_localnet")
DEFAULT_STATE_DIR = Path("/var/lib/kpyops/proxy")
STATE_FILE = "route_localnet.orig"


def enable_route_localnet(state_dir: Path, sysctl: Path = ROUTE_LOCALNET) -> bool:
    """Set route_localnet to 1, remembering the previous value; True if it was changed."""
    try:
        current = sysctl.read_text().strip()
        if current == "1":
            return False
        state = state_dir / STATE_FILE
        if not state.exists():
            state_dir.mkdir(parents=True, exist_ok=True)
            tmp = state.with_suffix(".tmp")
            tmp.write_text(current + "\n")
            tmp.replace(state)
        sysctl.write_text("1\n")
        return True
    except OSError as err:
        log.warning("cannot set %s (localhost NodePorts will not work): %s", sysctl, err)
        return False


def restore_route_localnet(state_dir: Path, sysctl: Path = ROUTE_LOCALNET) -> str | None:
    """Put back the value recorded by :func:`enable_route_localnet`; the value, or None."""
    state = state_dir / STATE_FILE
    try:
        original = state.read_text().strip()
    except FileNotFoundError:
        return None
    if original not in ("0", "1"):
        log.warning("ignoring %s: unexpected content %r", state, original)
        return None
    sysctl.write_text(original + "\n")
    state.unlink()
    log.info("route_localnet put back to %s", original)
    return original
