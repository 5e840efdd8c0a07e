"""Ansible filter: the one kubeconfig shape every role writes (kubelet, control plane, proxy).

    {{ kpyops_api_server_url | kpyops_kubeconfig(cluster=kpyops_cluster_name,
         user='system:kube-proxy', ca='/etc/kubernetes/pki/ca.crt',
         cert='/etc/kubernetes/pki/kube-proxy.crt', key='/etc/kubernetes/pki/kube-proxy.key') }}

One cluster, one user (client certificate and key by path: no key material in the file), one
context named USER@CLUSTER, which is current.
"""

from __future__ import annotations

import yaml

HEADER = "# Written by kpyops; changes here are overwritten on the next converge.\n"


def kpyops_kubeconfig(server: str, *, cluster: str, user: str, ca: str, cert: str, key: str) -> str:
    # Ansible hands tagged or unsafe str subclasses, which a safe dumper refuses
    server, cluster, user, ca, cert, key = (str(v) for v in (server, cluster, user, ca, cert, key))
    context = f"{user}@{cluster}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"certificate-authority": ca, "server": server}}],
        "users": [{"name": user, "user": {"client-certificate": cert, "client-key": key}}],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
        "current-context": context,
        "preferences": {},
    }
    return HEADER + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


class FilterModule:
    def filters(self):
        return {"kpyops_kubeconfig": kpyops_kubeconfig}
