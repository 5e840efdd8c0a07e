#!/usr/bin/python3
"""TEST DOUBLE, NOT KUBELET: kpyops-fake-kubelet, installed as /usr/local/bin/kubelet on test hosts.

There is no kubelet binary on the test machines, so the kubelet role's real task sequence
(rollout, CPU-manager switch, last-known-good rollback) runs against this stand-in. It
mimics only what those tasks depend on:

- it reads --config (a KubeletConfiguration file) and exits non-zero on what the real
  kubelet also refuses: a wrong apiVersion/kind, an unknown cpuManagerPolicy, an eviction
  threshold that is not a quantity or percentage;
- like the real CPU manager, it refuses to start when /var/lib/kubelet/cpu_manager_state
  holds a different policy than the configuration (kubespray issue #8535), and otherwise
  writes that checkpoint with the configured policy;
- it serves "ok" on http://<healthzBindAddress>:<healthzPort>/healthz while running.
"""

import http.server
import json
import os
import re
import sys

import yaml

STATE = "/var/lib/kubelet/cpu_manager_state"
QUANTITY = re.compile(r"^([0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?|[0-9]+(\.[0-9]+)?%)$")


def die(msg: str) -> None:
    print(f"kpyops-fake-kubelet: E {msg}", flush=True)
    sys.exit(1)


def main() -> None:
    config_path = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--config=")), None)
    if not config_path:
        die("--config is required")
    try:
        with open(config_path) as f:
            cfg = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        die(f"failed to load kubelet config file {config_path}: {e}")
    if cfg.get("apiVersion") != "kubelet.config.k8s.io/v1beta1" or cfg.get("kind") != "KubeletConfiguration":
        die("config file is not a kubelet.config.k8s.io/v1beta1 KubeletConfiguration")
    policy = cfg.get("cpuManagerPolicy", "none")
    if policy not in ("none", "static"):
        die(f'unknown policy: "{policy}"')
    for field in ("evictionHard", "evictionSoft"):
        for signal, value in (cfg.get(field) or {}).items():
            if not QUANTITY.match(str(value)):
                die(f"failed to parse {field} threshold {signal}={value!r}: quantities must match "
                    "the regular expression")
    if os.path.exists(STATE):
        with open(STATE) as f:
            checkpoint = json.load(f)
        if checkpoint.get("policyName") != policy:
            die(f'could not restore state from checkpoint: configured policy "{policy}" differs '
                f'from state checkpoint policy "{checkpoint.get("policyName")}", please drain this '
                f'node and delete the CPU manager checkpoint file "{STATE}" before restarting Kubelet')
    else:
        with open(STATE, "w") as f:
            json.dump({"policyName": policy, "defaultCpuSet": "", "checksum": 0}, f)

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            ok = self.path == "/healthz"
            self.send_response(200 if ok else 404)
            self.end_headers()
            self.wfile.write(b"ok" if ok else b"not found")

        def log_message(self, *args):
            pass

    address = (cfg.get("healthzBindAddress", "127.0.0.1"), int(cfg.get("healthzPort", 10248)))
    print(f"kpyops-fake-kubelet: serving /healthz on {address} with cpuManagerPolicy={policy}", flush=True)
    http.server.HTTPServer(address, Health).serve_forever()


if __name__ == "__main__":
    main()
