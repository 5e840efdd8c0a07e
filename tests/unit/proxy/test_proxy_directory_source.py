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


def bad_objects() -> list[tuple[dict, str]]:
    """Objects the API server would refuse, with the field the log must name."""
    two = [{"name": "a", "port": 80}, {"port": 81}]
    return [
        (m.service("noport", "10.96.0.5", [{"name": "http"}]), "spec.ports[0].port"),
        (m.service("bigport", "10.96.0.6", [{"name": "http", "port": 70000}]), "spec.ports[0].port"),
        (m.service("unnamed", "10.96.0.7", two), "spec.ports[1].name"),
        ({"kind": "Service", "metadata": {}, "spec": {"ports": PORTS}}, "metadata.name"),
        (m.service("badip", "10.96.0.300", PORTS), "spec.clusterIPs[0]"),
        ({**m.endpoint_slice("web", [], PORTS), "addressType": "IPv5"}, "addressType"),
    ]


def test_one_bad_object_is_skipped_named_and_the_rest_applied(tmp_path, caplog):
    rec = Recorder()
    src = DirectorySource(tmp_path, rec)
    write(tmp_path / "good.yaml", m.service("web", "10.96.0.1", PORTS))
    for i, (obj, _field) in enumerate(bad_objects()):
        write(tmp_path / f"bad{i}.yaml", obj)
    with caplog.at_level("WARNING"):
        assert src.poll_once()
    assert rec.events == [("svc+", "web"), ("svc-synced",), ("eps-synced",)]
    for i, (_obj, field) in enumerate(bad_objects()):
        line = next(r.getMessage() for r in caplog.records if f"bad{i}.yaml" in r.getMessage())
        assert "skipping" in line and field in line, line
    # a later good change is applied while the bad files are still there
    rec.events.clear()
    write(tmp_path / "more.yaml", m.service("api", "10.96.0.2", PORTS))
    assert src.poll_once()
    assert rec.events == [("svc+", "api")]


def test_a_missing_folder_at_start_is_an_error(tmp_path):
    import pytest

    from kpyops.proxy.sources.directory import SourceFolderMissing

    with pytest.raises(SourceFolderMissing, match="does not exist"):
        DirectorySource(tmp_path / "nope", Recorder())


def test_a_folder_that_vanishes_keeps_the_last_state_and_says_so(tmp_path, caplog):
    folder = tmp_path / "services"
    folder.mkdir()
    rec = Recorder()
    src = DirectorySource(folder, rec)
    write(folder / "web.yaml", m.service("web", "10.96.0.1", PORTS))
    src.poll_once()
    rec.events.clear()
    (folder / "web.yaml").unlink()
    folder.rmdir()
    with caplog.at_level("ERROR"):
        assert not src.poll_once()
    assert rec.events == []  # nothing deleted
    assert any("is gone" in r.getMessage() and "keeping the last 1 services" in r.getMessage()
               for r in caplog.records)
    folder.mkdir()  # back, empty: now the service is really gone
    assert src.poll_once()
    assert rec.events == [("svc-", "web")]
