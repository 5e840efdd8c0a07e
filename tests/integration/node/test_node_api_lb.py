"""api_lb role: a node reaches every control plane through haproxy on 127.0.0.1:6443.

The control planes run a stand-in API server (TEST DOUBLE: a python HTTPS server answering
/readyz and / with its host name), so the real haproxy health checks and balancing run.
"""

from __future__ import annotations

import time

import pytest
from nodelab import ROOT, Lab

pytestmark = pytest.mark.integration

CPS = ["kpclb-cp-1", "kpclb-cp-2", "kpclb-cp-3"]
NODE = "kpclb-node-1"
SPEC = {
    "metadata": {"name": "kpclb"},
    "spec": {
        "cloud": "local",
        "local": {"subnet": "10.214.244.0/24"},
        "controlPlane": {"count": 3, "apiLoadBalancer": {"type": "local"}},
        "nodeGroups": [{"name": "node", "count": 1}],
    },
}
FAKE_APISERVER = r"""
import http.server, os, socket, ssl
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ready = not os.path.exists('/tmp/not-ready')
        code = 200 if (self.path != '/readyz' or ready) else 500
        self.send_response(code); self.end_headers()
        self.wfile.write((socket.gethostname() if self.path == '/' else ('ok' if code == 200 else 'no')).encode())
    def log_message(self, *a): pass
addr = os.environ['ADDR']
srv = http.server.HTTPServer((addr, 6443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain('/tmp/fake.crt', '/tmp/fake.key')
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with Lab.running(SPEC, tmp_path_factory.mktemp("api-lb")) as lab:
        for cp in CPS:
            start_fake(lab, cp)
        yield lab


def start_fake(lab: Lab, cp: str) -> None:
    addr = lab.sh(cp, "hostname -I").split()[0]
    lab.sh(cp, "test -f /tmp/fake.crt || openssl req -x509 -newkey rsa:2048 -nodes -days 1 "
               "-subj /CN=fake-apiserver -keyout /tmp/fake.key -out /tmp/fake.crt 2>/dev/null")
    lab.sh(cp, f"cat > /tmp/fake_apiserver.py <<'EOF'\n{FAKE_APISERVER}\nEOF")
    lab.sh(cp, f"systemd-run --unit fake-apiserver -E ADDR={addr} python3 /tmp/fake_apiserver.py")


def answers(lab: Lab, n: int = 12) -> list[str]:
    out = lab.sh(NODE, f"for i in $(seq {n}); do curl -sk --max-time 3 https://127.0.0.1:6443/ || echo FAIL; echo; done")
    return [line for line in out.splitlines() if line]


def wait_for(predicate, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(1)
    return False


def test_node_balances_over_every_healthy_control_plane(lab):
    run = lab.playbook(ROOT / "playbooks/api_lb.yml")
    run.assert_ok()
    lab.playbook(ROOT / "playbooks/api_lb.yml").assert_no_change()
    assert lab.sh(NODE, "systemctl is-active haproxy").strip() == "active"
    # the play is for nodes: control planes get no balancer (they use their own API server)
    assert set(run.recap) == {NODE}
    assert lab.sh(CPS[0], "command -v haproxy || echo none").strip() == "none"
    assert wait_for(lambda: set(answers(lab)) == set(CPS)), answers(lab)

    # a control plane whose /readyz fails is taken out; no request fails meanwhile
    lab.sh(CPS[1], "touch /tmp/not-ready")
    assert wait_for(lambda: set(answers(lab)) == {CPS[0], CPS[2]}), answers(lab)
    # a stopped API server too
    lab.sh(CPS[0], "systemctl stop fake-apiserver")
    assert wait_for(lambda: set(answers(lab)) == {CPS[2]}), answers(lab)
    assert "FAIL" not in answers(lab, 20)
    # and they come back
    lab.sh(CPS[1], "rm /tmp/not-ready")
    start_fake(lab, CPS[0])
    assert wait_for(lambda: set(answers(lab)) == set(CPS)), answers(lab)
