"""ApiSource: Services and EndpointSlices from the Kubernetes API, by list+watch.

Each resource has a :class:`Reflector`: it lists (in pages), hands the complete set to an
:class:`~kpyops.proxy.sources.store.ObjectStore`, then watches from the list's
resourceVersion with bookmarks. A dropped or timed-out watch resumes from the last
resourceVersion seen (events and bookmarks advance it); "410 Gone" (as an HTTP status or as a
watch ERROR event) means that version was compacted away, so it relists. Failures back off
exponentially with jitter. Objects labelled for another proxy or as headless are filtered by
the server, with kube-proxy's label selector.

Connection settings come from a kubeconfig or the in-cluster service account
(:mod:`kpyops.proxy.kubeconfig`); the requests themselves are plain HTTP(S) with urllib3.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import urllib3

from kpyops.proxy.kubeconfig import Connection, in_cluster, load_kubeconfig
from kpyops.proxy.objects import LABEL_HEADLESS, LABEL_SERVICE_PROXY_NAME
from kpyops.proxy.sources import SourceHandler
from kpyops.proxy.sources.store import ObjectStore

log = logging.getLogger(__name__)

SERVICES_PATH = "/api/v1/services"
ENDPOINT_SLICES_PATH = "/apis/discovery.k8s.io/v1/endpointslices"
PROXY_LABEL_SELECTOR = f"!{LABEL_SERVICE_PROXY_NAME},!{LABEL_HEADLESS}"


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class ResourceExpired(ApiError):
    """410 Gone: the requested resourceVersion is too old; relist."""


@dataclass
class ApiClient:
    """Just enough of a Kubernetes client for list and watch."""

    host: str
    headers: dict[str, str] = field(default_factory=dict)
    pool: urllib3.PoolManager = field(default_factory=urllib3.PoolManager)
    token_file: str | None = None  # a bearer token read again for every request

    @classmethod
    def from_kubeconfig(cls, path: str | None = None) -> ApiClient:
        """From a kubeconfig file, or in-cluster settings when ``path`` is None."""
        return cls.from_connection(load_kubeconfig(path) if path else in_cluster())

    @classmethod
    def from_connection(cls, conn: Connection) -> ApiClient:
        headers = {"Authorization": f"Bearer {conn.token}"} if conn.token else {}
        tls: dict[str, object] = {"cert_reqs": "CERT_REQUIRED" if conn.verify else "CERT_NONE"}
        if conn.verify and conn.ca_file:
            tls["ca_certs"] = conn.ca_file
        if conn.tls_server_name:
            tls["server_hostname"] = conn.tls_server_name
        if conn.cert_file:
            tls.update(cert_file=conn.cert_file, key_file=conn.key_file)
        return cls(conn.server, headers, urllib3.PoolManager(**tls), conn.token_file)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", **self.headers}
        if self.token_file:
            try:
                with open(self.token_file) as f:
                    headers["Authorization"] = f"Bearer {f.read().strip()}"
            except OSError as err:
                log.warning("cannot read the token file: %s", err)
        return headers

    def _request(self, path: str, params: dict[str, str], timeout: urllib3.Timeout, stream: bool):
        resp = self.pool.request(
            "GET",
            self.host + path,
            fields=params,
            headers=self._headers(),
            timeout=timeout,
            preload_content=not stream,
            retries=False,
        )
        if resp.status != 200:
            body = resp.data if not stream else resp.read()
            resp.release_conn()
            message = body.decode(errors="replace")[:300]
            if resp.status == 410:
                raise ResourceExpired(410, message)
            raise ApiError(resp.status, message)
        return resp

    def get_json(self, path: str, params: dict[str, str], timeout: float = 30.0) -> dict:
        resp = self._request(path, params, urllib3.Timeout(connect=10, read=timeout), stream=False)
        return json.loads(resp.data)

    def watch_lines(
        self, path: str, params: dict[str, str], read_timeout: float
    ) -> Iterator[bytes]:
        """The lines (one JSON event each) of a streaming watch response."""
        resp = self._request(
            path, params, urllib3.Timeout(connect=10, read=read_timeout), stream=True
        )
        try:
            buffer = b""
            for chunk in resp.stream(65536, decode_content=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                yield from (line for line in lines if line.strip())
            if buffer.strip():
                yield buffer
        finally:
            resp.release_conn()


class Reflector:
    """List+watch one resource into a store."""

    def __init__(
        self,
        client: ApiClient,
        path: str,
        store: ObjectStore,
        on_synced: Callable[[], None],
        label_selector: str = PROXY_LABEL_SELECTOR,
        page_size: int = 500,
        watch_timeout: int = 300,
        backoff_initial: float = 0.8,
        backoff_max: float = 30.0,
        field_selector: str = "",
        resync_period: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.path = path
        self.store = store
        self.on_synced = on_synced
        self.label_selector = label_selector
        self.field_selector = field_selector
        # relist at least this often (configSyncPeriod), between watches; 0: never
        self.resync_period = resync_period
        self.clock = clock
        self._listed_at = 0.0
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.resource_version: str | None = None
        self.lists = 0  # how many complete listings were done (for tests and logs)
        self.watches = 0
        self._synced = False

    def list(self) -> None:
        """List every object (all pages); replace the store; remember the resourceVersion."""
        items: list[dict] = []
        params = {"limit": str(self.page_size), **self._selectors()}
        while True:
            page = self.client.get_json(self.path, params)
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                break
            params["continue"] = meta["continue"]
        self.store.replace(items)
        self.resource_version = meta.get("resourceVersion") or ""
        self.lists += 1
        self._listed_at = self.clock()
        if not self._synced:
            self._synced = True
            self.on_synced()

    def _selectors(self) -> dict[str, str]:
        out = {}
        if self.label_selector:
            out["labelSelector"] = self.label_selector
        if self.field_selector:
            out["fieldSelector"] = self.field_selector
        return out

    def resync_due(self) -> bool:
        return bool(self.resync_period) and self.clock() - self._listed_at >= self.resync_period

    def watch(self, stop: threading.Event) -> int:
        """Watch from the current resourceVersion until the stream ends; events handled."""
        params = {
            "watch": "1",
            "allowWatchBookmarks": "true",
            "resourceVersion": self.resource_version or "",
            "timeoutSeconds": str(self.watch_timeout),
            **self._selectors(),
        }
        self.watches += 1
        handled = 0
        for line in self.client.watch_lines(self.path, params, self.watch_timeout + 15):
            if stop.is_set():
                break
            event = json.loads(line)
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                code = obj.get("code", 0)
                if code == 410:
                    raise ResourceExpired(410, obj.get("message", "resource version expired"))
                raise ApiError(code, obj.get("message", "watch error"))
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if kind in ("ADDED", "MODIFIED"):
                self.store.upsert(obj)
            elif kind == "DELETED":
                self.store.delete(obj)
            elif kind != "BOOKMARK":
                log.warning("%s: unknown watch event type %r", self.path, kind)
                continue
            if rv:
                self.resource_version = rv
            handled += 1
        return handled

    def run(self, stop: threading.Event) -> None:
        """List, then watch forever; relist on 410; back off on errors."""
        delay = self.backoff_initial
        while not stop.is_set():
            try:
                if self.resource_version is None or self.resync_due():
                    self.list()
                self.watch(stop)
                delay = self.backoff_initial  # a watch that ran and ended cleanly
                continue
            except ResourceExpired:
                log.info(
                    "%s: resourceVersion %s expired, relisting", self.path, self.resource_version
                )
                self.resource_version = None
                continue
            except (ApiError, urllib3.exceptions.HTTPError, OSError, ValueError) as err:
                log.warning("%s: %s; retrying in %.1fs", self.path, err, delay)
            stop.wait(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.backoff_max)


class ApiSource:
    """Services and EndpointSlices, each from its own reflector thread."""

    def __init__(self, client: ApiClient, handler: SourceHandler, **reflector_options) -> None:
        self.services = Reflector(
            client,
            SERVICES_PATH,
            ObjectStore(handler.on_service_update, handler.on_service_delete),
            handler.on_services_synced,
            **reflector_options,
        )
        self.slices = Reflector(
            client,
            ENDPOINT_SLICES_PATH,
            ObjectStore(handler.on_slice_update, handler.on_slice_delete),
            handler.on_slices_synced,
            **reflector_options,
        )

    @classmethod
    def from_kubeconfig(cls, path: str | None, handler: SourceHandler) -> ApiSource:
        return cls(ApiClient.from_kubeconfig(path), handler)

    def run(self, stop: threading.Event) -> None:
        threads = [
            threading.Thread(target=r.run, args=(stop,), name=f"watch-{r.path}", daemon=True)
            for r in (self.services, self.slices)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
