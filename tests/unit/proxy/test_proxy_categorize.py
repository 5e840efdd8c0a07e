from kpyops.proxy.categorize import categorize_endpoints
from kpyops.proxy.model import Endpoint, ServicePort, ServicePortName

SPN = ServicePortName("ns", "svc", "", "TCP")
READY_LOCAL = Endpoint("10.0.0.1", 80, is_local=True)
READY_REMOTE = Endpoint("10.0.0.2", 80)
TERM_LOCAL = Endpoint("10.0.0.3", 80, ready=False, serving=True, terminating=True, is_local=True)
TERM_REMOTE = Endpoint("10.0.0.4", 80, ready=False, serving=True, terminating=True)
NOT_SERVING = Endpoint("10.0.0.5", 80, ready=False, serving=False, terminating=True)


def svc(**kw):
    return ServicePort(SPN, ("10.96.0.1",), 80, **kw)


def test_cluster_policy_uses_ready_only():
    c = categorize_endpoints(svc(), [READY_LOCAL, READY_REMOTE, TERM_REMOTE, NOT_SERVING])
    assert c.cluster == (READY_LOCAL, READY_REMOTE)
    assert c.local == () and c.all_reachable == c.cluster and c.has_any


def test_serving_terminating_fallback():
    c = categorize_endpoints(svc(), [TERM_LOCAL, TERM_REMOTE, NOT_SERVING])
    assert c.cluster == (TERM_LOCAL, TERM_REMOTE) and c.has_any


def test_no_usable_endpoints():
    c = categorize_endpoints(svc(), [NOT_SERVING])
    assert c.cluster == () and not c.has_any


def test_internal_local_policy():
    c = categorize_endpoints(svc(internal_policy_local=True), [READY_LOCAL, READY_REMOTE])
    assert c.cluster == () and c.local == (READY_LOCAL,) and c.all_reachable == (READY_LOCAL,)
    c = categorize_endpoints(svc(internal_policy_local=True), [READY_REMOTE])
    assert c.local == () and c.has_any  # endpoints exist, just none here: traffic is dropped


def test_local_falls_back_to_local_terminating():
    c = categorize_endpoints(svc(internal_policy_local=True), [TERM_LOCAL, READY_REMOTE])
    assert c.local == (TERM_LOCAL,)


def test_external_local_policy_keeps_cluster_for_internal_traffic():
    c = categorize_endpoints(
        svc(node_port=30000, external_policy_local=True), [READY_LOCAL, READY_REMOTE]
    )
    assert c.cluster == (READY_LOCAL, READY_REMOTE)
    assert c.local == (READY_LOCAL,)
    assert set(c.all_reachable) == {READY_LOCAL, READY_REMOTE}


def test_external_local_ignored_without_external_addresses():
    c = categorize_endpoints(svc(external_policy_local=True), [READY_LOCAL, READY_REMOTE])
    assert c.local == () and c.cluster == (READY_LOCAL, READY_REMOTE)
