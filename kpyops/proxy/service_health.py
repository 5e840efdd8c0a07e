"""Health-check node ports: kube-proxy's per-service health servers.

A Service of type LoadBalancer with ``externalTrafficPolicy: Local`` gets a
``spec.healthCheckNodePort``. The proxy on every node serves HTTP there so that the cloud load
balancer sends traffic only to nodes with local endpoints: ``GET`` (any path) answers 200 with
``{"service": {"namespace", "name"}, "localEndpoints": N, "serviceProxyHealthy": bool}`` when
the node has N > 0 ready local endpoints and the proxy is healthy, 503 otherwise (same body).

:class:`ServiceHealthServers` opens and closes one server per port (and listen address) as the
sync loop calls :meth:`ServiceHealthServers.sync`; a port that cannot be bound is logged and
retried at the next sync.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from kpyops.proxy.model import EndpointsMap, ServiceMap

log = logging.getLogger(__name__)

ServiceKey = tuple[str, str]  # (namespace, name)


def wanted_health_ports(services: ServiceMap) -> dict[ServiceKey, int]:
    """The health-check node port of each service that has one."""
    return {
        (spn.namespace, spn.name): svc.health_check_node_port
        for spn, svc in services.items()
        if svc.health_check_node_port
    }


def local_ready_endpoints(
    services: Iterable[ServiceKey], services_map: ServiceMap, endpoints: EndpointsMap
) -> dict[ServiceKey, int]:
    """Ready endpoints on this node, per service (an endpoint IP counted once over ports)."""
    wanted = set(services)
    ips: dict[ServiceKey, set[str]] = {key: set() for key in wanted}
    for spn in services_map:
        key = (spn.namespace, spn.name)
        if key not in wanted:
            continue
        for ep in endpoints.get(spn, ()):
            if ep.is_local and ep.ready:
                ips[key].add(ep.ip)
    return {key: len(found) for key, found in ips.items()}


class _V6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


@dataclass
class _Served:
    port: int
    servers: list[ThreadingHTTPServer]


class ServiceHealthServers:
    """The set of health-check servers, kept equal to what the services ask for."""

    def __init__(
        self, addresses: Sequence[str] = ("0.0.0.0",), healthy: Callable[[], bool] = lambda: True
    ) -> None:
        self.addresses = tuple(addresses)
        self.healthy = healthy
        self._lock = threading.Lock()
        self._served: dict[ServiceKey, _Served] = {}
        self._local: dict[ServiceKey, int] = {}

    def status(self, key: ServiceKey) -> tuple[int, dict]:
        """HTTP status and JSON body for one service, as kube-proxy answers."""
        with self._lock:
            count = self._local.get(key, 0)
        healthy = self.healthy()
        body = {
            "service": {"namespace": key[0], "name": key[1]},
            "localEndpoints": count,
            "serviceProxyHealthy": healthy,
        }
        return (200 if count > 0 and healthy else 503), body

    def ports(self) -> dict[ServiceKey, int]:
        """Ports currently served (bound on every address)."""
        with self._lock:
            return {key: s.port for key, s in self._served.items()}

    def sync(self, wanted: Mapping[ServiceKey, int], local: Mapping[ServiceKey, int]) -> None:
        """Serve exactly ``wanted`` (service -> port), answering with ``local`` counts."""
        with self._lock:
            self._local = dict(local)
            stale = [key for key, served in self._served.items() if wanted.get(key) != served.port]
            closing = [self._served.pop(key) for key in stale]
        for served in closing:
            for server in served.servers:
                server.shutdown()
                server.server_close()
            log.info("closed health-check node port %d", served.port)
        for key, port in wanted.items():
            if key in self._served:
                continue
            servers = self._open(key, port)
            if servers:
                with self._lock:
                    self._served[key] = _Served(port, servers)

    def close_all(self) -> None:
        self.sync({}, {})

    def _open(self, key: ServiceKey, port: int) -> list[ThreadingHTTPServer]:
        manager = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                code, body = manager.status(key)
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        servers: list[ThreadingHTTPServer] = []
        try:
            for address in self.addresses:
                cls = _V6Server if ":" in address else ThreadingHTTPServer
                server = cls((address, port), Handler)
                server.daemon_threads = True
                servers.append(server)
        except OSError as err:
            log.error(
                "cannot serve health-check node port %d of %s/%s: %s (retrying at next sync)",
                port,
                *key,
                err,
            )
            for server in servers:
                server.server_close()
            return []
        for server in servers:
            threading.Thread(
                target=server.serve_forever, name=f"health-{port}", daemon=True
            ).start()
        log.info("serving health-check node port %d of %s/%s", port, *key)
        return servers
