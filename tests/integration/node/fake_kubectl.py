#!/usr/bin/python3
"""TEST DOUBLE, NOT KUBECTL: kpyops-fake-kubectl, for hosts without an API server.

Answers the few kubectl calls the kubelet role makes, from files, and records what it
was asked to do in /tmp/fake-kubectl.log (one line per action):
- ``get --raw /readyz``: ok
- ``get csr -o json``: one CertificateSigningRequest per /tmp/fake-csr/<name>.pem, signer
  kubernetes.io/kubelet-serving, user system:node:<hostname>; approved ones (in the log)
  carry an Approved condition
- ``drain NODE ...``, ``uncordon NODE``, ``certificate approve NAME``: logged
"""

import base64
import json
import pathlib
import socket
import sys

LOG = pathlib.Path("/tmp/fake-kubectl.log")
CSRS = pathlib.Path("/tmp/fake-csr")


def log(line: str) -> None:
    with LOG.open("a") as f:
        f.write(line + "\n")


args = [a for a in sys.argv[1:] if not a.startswith("--kubeconfig") and not a.endswith(".conf")]
done = LOG.read_text().splitlines() if LOG.exists() else []
if args[:2] == ["get", "--raw"]:
    print("ok")
elif args[:2] == ["get", "csr"]:
    items = []
    for pem in sorted(CSRS.glob("*.pem")):
        item = {"metadata": {"name": pem.stem},
                "spec": {"request": base64.b64encode(pem.read_bytes()).decode(),
                         "signerName": "kubernetes.io/kubelet-serving",
                         "username": f"system:node:{socket.gethostname()}"},
                "status": {}}
        if f"approve {pem.stem}" in done:
            item["status"]["conditions"] = [{"type": "Approved", "status": "True"}]
        items.append(item)
    print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
elif args[:1] == ["drain"]:
    log(f"drain {args[1]}")
elif args[:1] == ["uncordon"]:
    log(f"uncordon {args[1]}")
elif args[:2] == ["certificate", "approve"]:
    log(f"approve {args[2]}")
else:
    print(f"fake kubectl: unsupported {args}", file=sys.stderr)
    sys.exit(1)
