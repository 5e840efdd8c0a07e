"""The API source against a fake apiserver speaking the watch protocol."""

import threading
import time

import pytest
from proxy_dataplane import FakeDataplane
from proxy_fake_apiserver import PATHS, FakeApiServer

from kpyops.proxy import manifests as m
from kpyops.proxy.model import ServicePortName
from kpyops.proxy.proxier import Proxier
from kpyops.proxy.sources.api import ApiClient, ApiSource, Reflector
from kpyops.proxy.sources.store import ObjectStore

SVC, EPS = PATHS
PORTS = [{"name": "http", "port": 80}]


class Objects:
    """Current objects by name, as a reflector's events describe them."""

    def __init__(self):
        self.objects = {}
        self.synced = threading.Event()

    def store(self):
        return ObjectStore(self._update, self._delete)

    def _update(self, obj):
        self.objects[obj["metadata"]["name"]] = obj

    def _delete(self, obj):
        self.objects.pop(obj["metadata"]["name"], None)


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached")


@pytest.fixture
def api():
    with FakeApiServer() as server:
        yield server


def client(api):
    return ApiClient(api.url, {"Authorization": f"Bearer {api.token}"})


@pytest.fixture
def running(api):
    """A services reflector running in a thread; yields (reflector, objects)."""
    stop = threading.Event()
    seen = Objects()
    refl = Reflector(
        client(api),
        SVC,
        seen.store(),
        seen.synced.set,
        page_size=2,
        watch_timeout=5,
        backoff_initial=0.01,
    )
    thread = threading.Thread(target=refl.run, args=(stop,), daemon=True)
    api.put(SVC, m.service("a", "10.96.0.1", PORTS))
    api.put(SVC, m.service("b", "10.96.0.2", PORTS))
    api.put(SVC, m.service("c", "10.96.0.3", PORTS))
    api.put(
        SVC,
        m.service(
            "other", "10.96.0.4", PORTS, labels={"service.kubernetes.io/service-proxy-name": "x"}
        ),
    )
    thread.start()
    assert seen.synced.wait(5)
    wait_for(lambda: len(api.watch_requests(SVC)) == 1)
    yield refl, seen
    stop.set()
    api.drop_watches()
    thread.join(5)


def test_paged_list_with_selector_then_watch_events(api, running):
    refl, seen = running
    assert sorted(seen.objects) == ["a", "b", "c"]  # "other" belongs to another proxy
    lists = api.list_requests(SVC)
    assert [q.get("continue") for q in lists] == [None, "2"]  # two pages of 2
    assert (
        lists[0]["labelSelector"]
        == "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless"
    )
    watch = api.watch_requests(SVC)[0]
    assert watch["resourceVersion"] == "104" and watch["allowWatchBookmarks"] == "true"

    api.put(SVC, m.service("d", "10.96.0.5", PORTS))
    api.put(SVC, m.service("a", "10.96.0.9", PORTS))
    api.delete(SVC, "default", "b")
    wait_for(lambda: "b" not in seen.objects)
    assert sorted(seen.objects) == ["a", "c", "d"]
    assert seen.objects["a"]["spec"]["clusterIP"] == "10.96.0.9"
    assert refl.resource_version == str(api.rv)


def test_bookmark_then_dropped_connection_resumes_without_relist(api, running):
    refl, seen = running
    mark = api.bookmark(SVC)
    wait_for(lambda: refl.resource_version == str(mark))
    api.drop_watches()
    wait_for(lambda: len(api.watch_requests(SVC)) == 2)
    assert api.watch_requests(SVC)[1]["resourceVersion"] == str(mark)
    api.put(SVC, m.service("e", "10.96.0.6", PORTS))
    wait_for(lambda: "e" in seen.objects)
    assert refl.lists == 1


@pytest.mark.parametrize("as_event", [True, False])
def test_410_gone_relists_and_catches_up_on_missed_changes(api, running, as_event):
    refl, seen = running
    api.gone_as_event = as_event
    with api.cond:  # while the watch is down, history is lost
        api.drop_watches()
        api.delete(SVC, "default", "a")
        api.put(SVC, m.service("z", "10.96.0.26", PORTS))
        api.compact()
    wait_for(lambda: refl.lists == 2)
    wait_for(lambda: sorted(seen.objects) == ["b", "c", "z"])  # the relist found the delete
    assert refl.resource_version == str(api.rv)
    # then it watches from the relisted version, and does not relist again
    wait_for(lambda: api.watch_requests(SVC)[-1]["resourceVersion"] == str(api.rv))
    api.put(SVC, m.service("y", "10.96.0.25", PORTS))
    wait_for(lambda: "y" in seen.objects)
    assert refl.lists == 2


def test_server_errors_back_off_and_recover(api, running):
    refl, seen = running
    with api.cond:
        api.fail_next = 3
        api.drop_watches()
    api.put(SVC, m.service("f", "10.96.0.7", PORTS))
    wait_for(lambda: "f" in seen.objects)
    assert len(api.watch_requests(SVC)) >= 5  # 1 before + 3 refused + 1 that worked
    assert refl.lists == 1


def test_wrong_token_is_an_error_not_a_crash(api):
    refl = Reflector(
        ApiClient(api.url, {"Authorization": "Bearer nope"}),
        SVC,
        Objects().store(),
        lambda: None,
        backoff_initial=0.01,
    )
    stop = threading.Event()
    t = threading.Thread(target=refl.run, args=(stop,), daemon=True)
    t.start()
    wait_for(lambda: len(api.requests) >= 3)  # keeps retrying
    stop.set()
    t.join(5)
    assert refl.lists == 0


def test_api_source_feeds_the_proxier(api):
    api.put(SVC, m.service("web", "10.96.0.10", PORTS))
    api.put(EPS, m.endpoint_slice("web", [m.endpoint("10.0.0.1", node="node1")], PORTS))
    dp = FakeDataplane()
    proxier = Proxier(dp, hostname="node1", min_sync_period=0)
    source = ApiSource(client(api), proxier, watch_timeout=5)
    stop = threading.Event()
    t = threading.Thread(target=source.run, args=(stop,), daemon=True)
    t.start()
    try:
        wait_for(lambda: proxier.ready)
        proxier.sync_proxy_rules()
        web = ServicePortName("default", "web", "http", "TCP")
        services, endpoints, _ = dp.last
        assert services[web].cluster_ips == ("10.96.0.10",)
        assert endpoints[web][0].ip == "10.0.0.1" and endpoints[web][0].is_local
        api.put(EPS, m.endpoint_slice("web", [m.endpoint("10.0.0.2")], PORTS))
        wait_for(lambda: proxier.slices.pending)
        proxier.sync_proxy_rules()
        assert dp.last[2] == {web} and dp.last[1][web][0].ip == "10.0.0.2"
    finally:
        stop.set()
        api.drop_watches()
        t.join(5)


def test_client_from_kubeconfig_with_token(api, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "{api.url}"}}}}]
users: [{{name: u, user: {{token: {api.token}}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
"""
    )
    api.put(SVC, m.service("web", "10.96.0.10", PORTS))
    c = ApiClient.from_kubeconfig(str(kubeconfig))
    assert c.headers == {"Authorization": f"Bearer {api.token}"}
    listed = c.get_json(SVC, {})
    assert [i["metadata"]["name"] for i in listed["items"]] == ["web"]


def test_config_sync_period_relists_between_watches(api):
    """configSyncPeriod: the reflector lists afresh at least that often."""
    api.put(SVC, m.service("a", "10.96.0.1", PORTS))
    seen = Objects()
    stop = threading.Event()
    refl = Reflector(client(api), SVC, seen.store(), seen.synced.set, watch_timeout=1,
                     backoff_initial=0.01, resync_period=0.5)
    thread = threading.Thread(target=refl.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: refl.lists >= 3, timeout=15)
    finally:
        stop.set()
    assert "a" in seen.objects
    never = Reflector(client(api), SVC, Objects().store(), lambda: None)
    assert not never.resync_due()  # 0: relist only when the watch cannot go on


def test_node_watch_restarts_the_proxy_once_when_its_node_changes():
    from kpyops.proxy.node import NodeInfo
    from kpyops.proxy.sources.node_watch import NodeWatch

    said = []

    def node(zone, ip):
        return {"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": zone}},
                "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}

    watch = NodeWatch(ApiClient("http://127.0.0.1:1"), "n1", NodeInfo("zone-a", ("10.0.0.5",)),
                      said.append)
    assert watch.reflector.field_selector == "metadata.name=n1" and watch.reflector.label_selector == ""
    watch._seen(node("zone-a", "10.0.0.5"))
    watch._seen({"metadata": {"name": "n1"}})  # not initialised yet: nothing to compare
    assert said == []
    watch._seen(node("zone-b", "10.0.0.6"))
    assert said == ["zone zone-a -> zone-b; addresses 10.0.0.5 -> 10.0.0.6"]
    watch._seen(node("zone-c", "10.0.0.6"))
    assert len(said) == 1  # said once: the proxy is stopping
