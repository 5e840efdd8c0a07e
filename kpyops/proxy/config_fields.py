"""Every field of KubeProxyConfiguration v1alpha1, for refusing unknown keys.

Generated from the reference field list (kube-proxy-config-v1alpha1.json, from
staging/src/k8s.io/kube-proxy/config/v1alpha1/types.go@578f9c968306146dcbffd11cbc80fdacff59d3ac); a unit test keeps it in step with that file.
Each map goes from a JSON field name to the name of its nested object type (a key of
``TYPES``), or ``None`` for a scalar, list or free-form map.
"""

from __future__ import annotations

API_VERSION = "kubeproxy.config.k8s.io/v1alpha1"
KIND = "KubeProxyConfiguration"

FIELDS: dict[str, str | None] = {
    "apiVersion": None,
    "kind": None,
    "featureGates": None,
    "clientConnection": "ClientConnectionConfiguration",
    "logging": "LoggingConfiguration",
    "hostnameOverride": None,
    "bindAddress": None,
    "healthzBindAddress": None,
    "metricsBindAddress": None,
    "bindAddressHardFail": None,
    "enableProfiling": None,
    "showHiddenMetricsForVersion": None,
    "mode": None,
    "iptables": "KubeProxyIPTablesConfiguration",
    "ipvs": "KubeProxyIPVSConfiguration",
    "nftables": "KubeProxyNFTablesConfiguration",
    "winkernel": "KubeProxyWinkernelConfiguration",
    "detectLocalMode": None,
    "detectLocal": "DetectLocalConfiguration",
    "clusterCIDR": None,
    "nodePortAddresses": None,
    "oomScoreAdj": None,
    "conntrack": "KubeProxyConntrackConfiguration",
    "configSyncPeriod": None,
    "portRange": None,
    "windowsRunAsService": None,
}

TYPES: dict[str, dict[str, str | None]] = {
    "ClientConnectionConfiguration": {
        "kubeconfig": None,
        "acceptContentTypes": None,
        "contentType": None,
        "qps": None,
        "burst": None,
    },
    "LoggingConfiguration": {
        "format": None,
        "flushFrequency": None,
        "verbosity": None,
        "vmodule": "VModuleItem",
        "options": "FormatOptions",
    },
    "KubeProxyIPTablesConfiguration": {
        "masqueradeBit": None,
        "masqueradeAll": None,
        "localhostNodePorts": None,
        "syncPeriod": None,
        "minSyncPeriod": None,
    },
    "KubeProxyIPVSConfiguration": {
        "syncPeriod": None,
        "minSyncPeriod": None,
        "scheduler": None,
        "excludeCIDRs": None,
        "strictARP": None,
        "tcpTimeout": None,
        "tcpFinTimeout": None,
        "udpTimeout": None,
    },
    "KubeProxyNFTablesConfiguration": {
        "masqueradeBit": None,
        "masqueradeAll": None,
        "syncPeriod": None,
        "minSyncPeriod": None,
    },
    "KubeProxyWinkernelConfiguration": {
        "networkName": None,
        "sourceVip": None,
        "enableDSR": None,
        "rootHnsEndpointName": None,
        "forwardHealthCheckVip": None,
    },
    "DetectLocalConfiguration": {"bridgeInterface": None, "interfaceNamePrefix": None},
    "KubeProxyConntrackConfiguration": {
        "maxPerCore": None,
        "min": None,
        "tcpEstablishedTimeout": None,
        "tcpCloseWaitTimeout": None,
        "tcpBeLiberal": None,
        "udpTimeout": None,
        "udpStreamTimeout": None,
    },
    "VModuleItem": {"filePattern": None, "verbosity": None},
    "FormatOptions": {"text": "TextOptions", "json": "JSONOptions"},
    "TextOptions": {"splitStream": None, "infoBufferSize": None},
    "JSONOptions": {"splitStream": None, "infoBufferSize": None},
    "OutputRoutingOptions": {"splitStream": None, "infoBufferSize": None},
}

MODES = ("", "iptables", "ipvs", "nftables", "kernelspace")
DETECT_LOCAL_MODES = ("", "ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix")
NODE_PORT_ADDRESS_KEYWORDS = ("primary", "localhost", "all")
