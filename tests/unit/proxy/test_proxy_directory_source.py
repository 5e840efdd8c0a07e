import os

import yaml

from kpyops.proxy import manifests as m
from kpyops.proxy.sources.directory import DirectorySource


class Recorder:
    def __init__(self):
        self.events = []

    def on_service_update(self, obj):
        self.events.append(("svc+", obj["metadata"]["name"]))

    def on_service_delete(self, obj):
        self.events.append(("svc-", obj["metadata"]["name"]))

    def on_services_synced(self):
        self.events.append(("svc-synced",))

    def on_slice_update(self, obj):
        self.events.append(("eps+", obj["metadata"]["name"]))

    def on_slice_delete(self, obj):
        self.events.append(("eps-", obj["metadata"]["name"]))

    def on_slices_synced(self):
        self.events.append(("eps-synced",))


PORTS = [{"name": "http", "port": 80}]


def write(path, *docs):
    path.write_text(yaml.safe_dump_all(docs))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a visible mtime change


def test_directory_source_events(tmp_path):
    rec = Recorder()
    src = DirectorySource(tmp_path, rec)
    write(
        tmp_path / "web.yaml",
        m.service("web", "10.96.0.1", PORTS),
        m.endpoint_slice("web", [], PORTS),
    )
    (tmp_path / "notes.txt").write_text("ignored")
    assert src.poll_once()
    assert rec.events == [("svc+", "web"), ("eps+", "web-abc12"), ("svc-synced",), ("eps-synced",)]
    assert not src.poll_once()  # nothing changed

    rec.events.clear()
    write(
        tmp_path / "more.yaml",
        {"apiVersion": "v1", "kind": "List", "items": [m.service("api", "10.96.0.2", PORTS)]},
    )
    assert src.poll_once()
    assert rec.events == [("svc+", "api")]  # "web" is unchanged: no event

    rec.events.clear()
    (tmp_path / "web.yaml").unlink()
    src.poll_once()
    assert sorted(rec.events) == [("eps-", "web-abc12"), ("svc-", "web")]


def test_broken_file_keeps_previous_objects(tmp_path):
    rec = Recorder()
    src = DirectorySource(tmp_path, rec)
    write(tmp_path / "web.yaml", m.service("web", "10.96.0.1", PORTS))
    src.poll_once()
    rec.events.clear()
    (tmp_path / "web.yaml").write_text("kind: Service\nmetadata: [unclosed\n")
    src.poll_once()
    assert rec.events == []
