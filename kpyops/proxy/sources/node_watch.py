"""This node's own Node object, watched: kube-proxy's NodeManager.

The proxy reads its zone and primary IPs once at start and builds its dataplanes from them.
When the Node later says otherwise (a new zone label, new addresses), the rules no longer
match the node: like kube-proxy on an IP change, the proxy says what changed and stops, and
systemd (Restart=always) starts it again with the new values.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kpyops.proxy.node import NodeInfo, node_info_from_object
from kpyops.proxy.sources.api import ApiClient, Reflector
from kpyops.proxy.sources.store import ObjectStore

log = logging.getLogger(__name__)


class NodeWatch:
    def __init__(self, client: ApiClient, name: str, started_with: NodeInfo,
                 on_change: Callable[[str], None], *, resync_period: float = 0.0) -> None:
        self.name = name
        self.started_with = started_with
        self.on_change = on_change
        self.changed: str | None = None
        self.reflector = Reflector(
            client, "/api/v1/nodes", ObjectStore(self._seen, self._gone), lambda: None,
            label_selector="", field_selector=f"metadata.name={name}",
            resync_period=resync_period)

    def _seen(self, node: dict) -> None:
        now = node_info_from_object(node)
        if self.changed or not (now.zone or now.ips):
            return  # already said; or a Node without what we read (not yet initialised)
        was = self.started_with
        diffs = []
        if now.zone != was.zone:
            diffs.append(f"zone {was.zone or '(none)'} -> {now.zone or '(none)'}")
        if now.ips and now.ips != was.ips:
            diffs.append(f"addresses {', '.join(was.ips) or '(none)'} -> {', '.join(now.ips)}")
        if diffs:
            self.changed = "; ".join(diffs)
            log.warning("Node %s changed (%s): restarting to apply it", self.name, self.changed)
            self.on_change(self.changed)

    def _gone(self, _node: dict) -> None:
        log.warning("Node %s was deleted; the rules stay as they are", self.name)

    def run(self, stop: threading.Event) -> None:
        self.reflector.run(stop)
