"""DirectorySource: Services and EndpointSlices from YAML files in a folder.

Like kubelet's static pods: every ``*.yaml``/``*.yml``/``*.json`` file under the folder may hold
several documents (``---``) and ``List`` objects. The folder is polled: when any file's
mtime, size or name changes, every file is re-read and the differences become events. A file
that fails to parse keeps its previous objects (a half-written file does not delete services).
An object the API server would refuse (:mod:`.validation`) is skipped with a log line naming
its file and field; the others are applied. The folder must exist at start; if it vanishes
later, the last good state is kept and the loss is logged at every poll until it is back.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import yaml

from kpyops.proxy.sources import ENDPOINT_SLICE, SERVICE, SourceHandler
from kpyops.proxy.sources.store import ObjectStore
from kpyops.proxy.sources.validation import service_problem, slice_problem

log = logging.getLogger(__name__)

SUFFIXES = (".yaml", ".yml", ".json")
CHECKS = {SERVICE: service_problem, ENDPOINT_SLICE: slice_problem}


class SourceFolderMissing(FileNotFoundError):
    """The directory source's folder does not exist."""


def _documents(path: Path) -> list[dict]:
    out = []
    for doc in yaml.safe_load_all(path.read_text()):
        if not isinstance(doc, dict):
            continue
        if doc.get("kind", "").endswith("List") and isinstance(doc.get("items"), list):
            out.extend(item for item in doc["items"] if isinstance(item, dict))
        else:
            out.append(doc)
    return out


class DirectorySource:
    def __init__(self, folder: str | Path, handler: SourceHandler, interval: float = 0.5) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise SourceFolderMissing(f"the services folder {self.folder} does not exist")
        self.handler = handler
        self.interval = interval
        self.services = ObjectStore(handler.on_service_update, handler.on_service_delete)
        self.slices = ObjectStore(handler.on_slice_update, handler.on_slice_delete)
        self._signature: tuple | None = None
        self._by_file: dict[Path, list[dict]] = {}
        self._synced = False

    def _files(self) -> list[Path]:
        return sorted(p for p in self.folder.rglob("*") if p.suffix in SUFFIXES and p.is_file())

    def _current_signature(self, files: list[Path]) -> tuple:
        sig = []
        for p in files:
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            sig.append((str(p), st.st_mtime_ns, st.st_size))
        return tuple(sig)

    def poll_once(self) -> bool:
        """Re-read the folder if anything changed; True if it was re-read."""
        if not self.folder.is_dir():
            log.error("the services folder %s is gone: keeping the last %d services and %d "
                      "endpoint slices until it is back", self.folder, len(self.services.objects),
                      len(self.slices.objects))
            return False
        files = self._files()
        signature = self._current_signature(files)
        if signature == self._signature:
            return False
        self._signature = signature
        by_file: dict[Path, list[dict]] = {}
        for path in files:
            try:
                by_file[path] = _documents(path)
            except (OSError, yaml.YAMLError) as err:
                log.warning("cannot read %s, keeping its previous objects: %s", path, err)
                by_file[path] = self._by_file.get(path, [])
        self._by_file = by_file
        objects = []
        for path, docs in by_file.items():
            for obj in docs:
                check = CHECKS.get(obj.get("kind"))
                problem = check(obj) if check else None
                if problem:
                    name = (obj.get("metadata") or {}).get("name") if isinstance(
                        obj.get("metadata"), dict) else None
                    log.warning("%s: skipping %s %s: %s", path, obj.get("kind"), name or "(no name)",
                                problem)
                    continue
                objects.append(obj)
        self.services.replace(o for o in objects if o.get("kind") == SERVICE)
        self.slices.replace(o for o in objects if o.get("kind") == ENDPOINT_SLICE)
        if not self._synced:
            self._synced = True
            self.handler.on_services_synced()
            self.handler.on_slices_synced()
        return True

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set."""
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("directory source %s", self.folder)
            stop.wait(self.interval)
