"""An in-process HTTP server speaking the Kubernetes list/watch protocol, for source tests.

It serves ``/api/v1/services`` and ``/apis/discovery.k8s.io/v1/endpointslices``: lists with
``limit``/``continue`` pages and ``!label`` selectors; watches as chunked JSON lines from a
resourceVersion (ADDED / MODIFIED / DELETED / BOOKMARK), and "410 Gone" for a compacted
version (as an ERROR event or as the HTTP status). Tests can drop every open watch abruptly
and make the next requests fail.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

PATHS = ("/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices")


class FakeApiServer:
    def __init__(self, token: str = "s3cret") -> None:
        self.token = token
        self.cond = threading.Condition()
        self.rv = 100
        self.objects: dict[str, dict[tuple[str, str], dict]] = {p: {} for p in PATHS}
        self.events: dict[str, list[tuple[int, str, dict]]] = {p: [] for p in PATHS}
        self.compacted = 0  # watches from a version below this get 410
        self.gone_as_event = True
        self.fail_next = 0  # answer this many next requests with HTTP 500
        self.generation = 0  # bumped to drop open watches
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeApiServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.drop_watches()
        self.server.shutdown()

    # -- changes ----------------------------------------------------------------------------------

    def put(self, path: str, obj: dict) -> int:
        with self.cond:
            self.rv += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self.rv)
            key = (obj["metadata"].get("namespace", "default"), obj["metadata"]["name"])
            kind = "MODIFIED" if key in self.objects[path] else "ADDED"
            self.objects[path][key] = obj
            self.events[path].append((self.rv, kind, obj))
            self.cond.notify_all()
            return self.rv

    def delete(self, path: str, namespace: str, name: str) -> None:
        with self.cond:
            self.rv += 1
            obj = copy.deepcopy(self.objects[path].pop((namespace, name)))
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self.events[path].append((self.rv, "DELETED", obj))
            self.cond.notify_all()

    def bookmark(self, path: str) -> int:
        with self.cond:
            self.rv += 1
            mark = {"kind": "Bookmark", "metadata": {"resourceVersion": str(self.rv)}}
            self.events[path].append((self.rv, "BOOKMARK", mark))
            self.cond.notify_all()
            return self.rv

    def compact(self) -> None:
        """Forget history: watches from any version older than the current one now get 410
        (as etcd compaction at the current revision: a list's version can still be watched)."""
        with self.cond:
            self.compacted = self.rv
            for path in PATHS:
                self.events[path] = []

    def drop_watches(self) -> None:
        with self.cond:
            self.generation += 1
            self.cond.notify_all()

    def watch_requests(self, path: str) -> list[dict[str, str]]:
        return [q for p, q in self.requests if p == path and q.get("watch") == "1"]

    def list_requests(self, path: str) -> list[dict[str, str]]:
        return [q for p, q in self.requests if p == path and q.get("watch") != "1"]

    # -- HTTP -------------------------------------------------------------------------------------

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _json(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                with api.cond:  # a watch belongs to the generation its request arrived in
                    api.requests.append((url.path, query))
                    generation = api.generation
                if self.headers.get("Authorization") != f"Bearer {api.token}":
                    self._json(401, {"kind": "Status", "code": 401})
                    return
                with api.cond:
                    if api.fail_next > 0:
                        api.fail_next -= 1
                        self._json(500, {"kind": "Status", "code": 500, "message": "etcd is sad"})
                        return
                if url.path not in PATHS:
                    self._json(404, {"kind": "Status", "code": 404})
                    return
                if query.get("watch") == "1":
                    self._watch(url.path, query, generation)
                else:
                    self._list(url.path, query)

            def _selected(self, obj: dict, selector: str) -> bool:
                labels = obj["metadata"].get("labels") or {}
                return all(
                    not (t.startswith("!") and t[1:] in labels) for t in selector.split(",") if t
                )

            def _list(self, path: str, query: dict[str, str]) -> None:
                with api.cond:
                    items = [
                        o
                        for _, o in sorted(api.objects[path].items())
                        if self._selected(o, query.get("labelSelector", ""))
                    ]
                    rv = api.rv
                start = int(query.get("continue", "0"))
                limit = int(query.get("limit", "0")) or len(items)
                page = items[start : start + limit]
                meta = {"resourceVersion": str(rv)}
                if start + limit < len(items):
                    meta["continue"] = str(start + limit)
                self._json(200, {"kind": "List", "metadata": meta, "items": page})

            def _watch(self, path: str, query: dict[str, str], generation: int) -> None:
                since = int(query.get("resourceVersion") or api.rv)
                if since < api.compacted:
                    gone = {
                        "kind": "Status",
                        "code": 410,
                        "reason": "Expired",
                        "message": "too old resource version",
                    }
                    if not api.gone_as_event:
                        self._json(410, gone)
                        return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                if since < api.compacted:
                    self._chunk(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
                    self._chunk(b"")
                    return
                deadline = time.monotonic() + int(query.get("timeoutSeconds", "30"))
                sent = since
                while True:
                    with api.cond:
                        pending = [e for e in api.events[path] if e[0] > sent]
                        if not pending:
                            api.cond.wait(0.05)
                        dropped = api.generation != generation
                    if dropped:
                        self.connection.shutdown(2)  # abrupt: no terminating chunk
                        self.close_connection = True
                        return
                    for rv, kind, obj in pending:
                        if kind != "BOOKMARK" or query.get("allowWatchBookmarks") == "true":
                            self._chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
                        sent = rv
                    if time.monotonic() > deadline:
                        self._chunk(b"")
                        return

        return Handler
