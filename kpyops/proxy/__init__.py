"""The kpyops service proxy: a kube-proxy in Python.

Sources (API list+watch, or a directory of YAML) feed change trackers; a bounded-frequency
runner calls one sync function that hands the current service and endpoint maps to a
dataplane (iptables here, IPVS in ``kpyops.proxy.ipvs``).
"""
