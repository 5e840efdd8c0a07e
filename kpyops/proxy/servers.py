"""HTTP endpoints: healthz (``/healthz``, ``/livez``) and metrics (``/metrics``, ``/proxyMode``)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST

from kpyops.proxy.config import split_host_port
from kpyops.proxy.health import ProxierHealth
from kpyops.proxy.metrics import ProxyMetrics


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _server(address: str, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    host, port = split_host_port(address)
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"http-{port}", daemon=True).start()
    return server


def serve_healthz(
    address: str, health: ProxierHealth, metrics: ProxyMetrics
) -> ThreadingHTTPServer:
    """Start the healthz server on ``address`` ("host:port") in a thread."""

    class Handler(_Quiet):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path not in ("/healthz", "/livez"):
                self._send(404, b"not found\n", "text/plain")
                return
            code, body = health.status()
            (metrics.healthz if path == "/healthz" else metrics.livez).labels(str(code)).inc()
            self._send(code, json.dumps(body).encode(), "application/json")

    return _server(address, Handler)


def serve_metrics(address: str, metrics: ProxyMetrics, mode: str) -> ThreadingHTTPServer:
    """Start the metrics server on ``address`` in a thread."""

    class Handler(_Quiet):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, metrics.exposition(), CONTENT_TYPE_LATEST)
            elif path == "/proxyMode":
                self._send(200, mode.encode(), "text/plain")
            else:
                self._send(404, b"not found\n", "text/plain")

    return _server(address, Handler)
