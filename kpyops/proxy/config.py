"""Load a KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) file.

Unknown keys are refused, at any depth, with an error that names the field path; the
accepted fields are those of upstream v1alpha1 (:mod:`kpyops.proxy.config_fields`). Defaults
are kube-proxy's, except ``mode``, which defaults to ``nftables`` here (kube-proxy: iptables),
and ``nodePortAddresses``, which means every local address in every mode (kube-proxy's
nftables mode defaults to ``primary``; kpyops keeps one behaviour for all modes).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kpyops.proxy import config_fields

# The one registry of what the proxy can do: the spec, the CLI, the IPVS dataplane and
# (held equal by tests/unit/proxy/test_proxy_registry.py) the kpyops_proxy role read it.
# nftables is kube-proxy's recommended mode (GA in 1.33); IPVS is deprecated upstream
# (KEP-5495) and kept here for clusters that use it.
DEFAULT_MODE = "nftables"
SUPPORTED_MODES = ("nftables", "iptables", "ipvs")
# The kernel's IPVS schedulers (ip_vs_<name> modules) kube-proxy accepts
IPVS_SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "sh", "dh", "sed", "nq", "mh")


class ConfigError(ValueError):
    """The configuration file is invalid; the message names the field."""

    def __init__(self, path: str, message: str, file: str | None = None) -> None:
        where = ": ".join(p for p in (file, path) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.path = path
        self.message = message


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: Any, path: str) -> float:
    """A Go duration ("1m30s", "500ms", "0") in seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool) and text == 0:
        return 0.0
    if not isinstance(text, str):
        raise ConfigError(path, f"expected a duration such as '30s', got {text!r}")
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ConfigError(path, f"invalid duration {text!r} (expected e.g. '1s', '1m30s')")
    return total


def check_known_fields(data: Any, fields: dict[str, str | None], path: str = "") -> None:
    """Raise ConfigError for the first key not in ``fields`` (recursing into nested types)."""
    if not isinstance(data, dict):
        raise ConfigError(path, f"expected a mapping, got {type(data).__name__}")
    for key, value in data.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in fields:
            raise ConfigError(
                where,
                f"unknown field {key!r} in KubeProxyConfiguration "
                f"(known here: {', '.join(sorted(fields))})",
            )
        nested = fields[key]
        if nested is None or value is None:
            continue
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            check_known_fields(
                item, config_fields.TYPES[nested], f"{where}[{i}]" if items is value else where
            )


@dataclass(frozen=True)
class IptablesConfig:
    masquerade_bit: int = 14
    masquerade_all: bool = False
    localhost_node_ports: bool = True
    sync_period: float = 30.0
    min_sync_period: float = 1.0


@dataclass(frozen=True)
class NftablesConfig:
    masquerade_bit: int = 14
    masquerade_all: bool = False
    sync_period: float = 30.0
    min_sync_period: float = 1.0


@dataclass(frozen=True)
class IpvsConfig:
    scheduler: str = "rr"
    sync_period: float = 30.0
    min_sync_period: float = 1.0
    exclude_cidrs: tuple[str, ...] = ()
    strict_arp: bool = False
    tcp_timeout: float = 0.0
    tcp_fin_timeout: float = 0.0
    udp_timeout: float = 0.0


@dataclass(frozen=True)
class ConntrackConfig:
    max_per_core: int = 32768
    min: int = 131072
    tcp_established_timeout: float = 86400.0
    tcp_close_wait_timeout: float = 3600.0
    tcp_be_liberal: bool = False
    udp_timeout: float = 0.0
    udp_stream_timeout: float = 0.0


@dataclass(frozen=True)
class ProxyConfig:
    """The completed configuration: every default filled in."""

    mode: str = DEFAULT_MODE
    hostname: str = field(default_factory=lambda: socket.gethostname().lower())
    bind_address: str = "0.0.0.0"
    healthz_bind_address: str = "0.0.0.0:10256"
    metrics_bind_address: str = "127.0.0.1:10249"
    cluster_cidrs: tuple[str, ...] = ()
    node_port_addresses: tuple[str, ...] = ()  # empty: all local addresses; may hold keywords
    kubeconfig: str = ""
    config_sync_period: float = 900.0
    iptables: IptablesConfig = field(default_factory=IptablesConfig)
    nftables: NftablesConfig = field(default_factory=NftablesConfig)
    ipvs: IpvsConfig = field(default_factory=IpvsConfig)
    conntrack: ConntrackConfig = field(default_factory=ConntrackConfig)
    # Not from the file: this node's topology zone, from its Node object or --node-zone.
    node_zone: str = ""

    def _mode_settings(self):
        """The settings block of the active mode (each supported mode has its own)."""
        return {"iptables": self.iptables, "nftables": self.nftables, "ipvs": self.ipvs}[self.mode]

    @property
    def sync_period(self) -> float:
        """The active mode's full-resync period."""
        return self._mode_settings().sync_period

    @property
    def min_sync_period(self) -> float:
        """The active mode's minimum interval between syncs."""
        return self._mode_settings().min_sync_period


def _get(data: dict, key: str, kind: type | tuple[type, ...], path: str, default: Any) -> Any:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(path + key, f"expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _cidrs(values: list | str, path: str) -> tuple[str, ...]:
    items = [v.strip() for v in values.split(",")] if isinstance(values, str) else list(values)
    out = []
    for item in items:
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError as err:
            raise ConfigError(path, f"invalid CIDR {item!r}") from err
    return tuple(out)


def _duration(data: dict, key: str, path: str, default: float) -> float:
    return default if data.get(key) is None else parse_duration(data[key], path + key)


def _masquerade_bit(data: dict, p: str, default: int) -> int:
    bit = _get(data, "masqueradeBit", int, p, default)
    if not 0 <= bit <= 31:
        raise ConfigError(p + "masqueradeBit", f"must be in 0..31, got {bit}")
    return bit


def _iptables(data: dict) -> IptablesConfig:
    d, p = IptablesConfig(), "iptables."
    return IptablesConfig(
        masquerade_bit=_masquerade_bit(data, p, d.masquerade_bit),
        masquerade_all=_get(data, "masqueradeAll", bool, p, d.masquerade_all),
        localhost_node_ports=_get(data, "localhostNodePorts", bool, p, d.localhost_node_ports),
        sync_period=_duration(data, "syncPeriod", p, d.sync_period),
        min_sync_period=_duration(data, "minSyncPeriod", p, d.min_sync_period),
    )


def _nftables(data: dict) -> NftablesConfig:
    d, p = NftablesConfig(), "nftables."
    return NftablesConfig(
        masquerade_bit=_masquerade_bit(data, p, d.masquerade_bit),
        masquerade_all=_get(data, "masqueradeAll", bool, p, d.masquerade_all),
        sync_period=_duration(data, "syncPeriod", p, d.sync_period),
        min_sync_period=_duration(data, "minSyncPeriod", p, d.min_sync_period),
    )


def _ipvs(data: dict) -> IpvsConfig:
    d, p = IpvsConfig(), "ipvs."
    scheduler = _get(data, "scheduler", str, p, "") or d.scheduler
    if scheduler not in IPVS_SCHEDULERS:
        raise ConfigError(
            p + "scheduler",
            f"unknown scheduler {scheduler!r} (one of {', '.join(IPVS_SCHEDULERS)})",
        )
    return IpvsConfig(
        scheduler=scheduler,
        sync_period=_duration(data, "syncPeriod", p, d.sync_period),
        min_sync_period=_duration(data, "minSyncPeriod", p, d.min_sync_period),
        exclude_cidrs=_cidrs(_get(data, "excludeCIDRs", list, p, []), p + "excludeCIDRs"),
        strict_arp=_get(data, "strictARP", bool, p, d.strict_arp),
        tcp_timeout=_duration(data, "tcpTimeout", p, d.tcp_timeout),
        tcp_fin_timeout=_duration(data, "tcpFinTimeout", p, d.tcp_fin_timeout),
        udp_timeout=_duration(data, "udpTimeout", p, d.udp_timeout),
    )


def _conntrack(data: dict) -> ConntrackConfig:
    d, p = ConntrackConfig(), "conntrack."
    return ConntrackConfig(
        max_per_core=_get(data, "maxPerCore", int, p, d.max_per_core),
        min=_get(data, "min", int, p, d.min),
        tcp_established_timeout=_duration(
            data, "tcpEstablishedTimeout", p, d.tcp_established_timeout
        ),
        tcp_close_wait_timeout=_duration(data, "tcpCloseWaitTimeout", p, d.tcp_close_wait_timeout),
        tcp_be_liberal=_get(data, "tcpBeLiberal", bool, p, d.tcp_be_liberal),
        udp_timeout=_duration(data, "udpTimeout", p, d.udp_timeout),
        udp_stream_timeout=_duration(data, "udpStreamTimeout", p, d.udp_stream_timeout),
    )


def _node_port_addresses(values: list) -> tuple[str, ...]:
    """CIDRs and the keywords of the reference (primary, localhost, all); ``all`` is ``()``.

    Keywords are resolved against the node later (:mod:`kpyops.proxy.node`)."""
    out: list[str] = []
    for i, value in enumerate(values):
        path = f"nodePortAddresses[{i}]"
        if value in config_fields.NODE_PORT_ADDRESS_KEYWORDS:
            if value == "all":
                return ()
            out.append(value)
            continue
        try:
            out.append(str(ipaddress.ip_network(str(value), strict=False)))
        except ValueError as err:
            keywords = ", ".join(config_fields.NODE_PORT_ADDRESS_KEYWORDS)
            raise ConfigError(
                path, f"{value!r} is neither a CIDR nor one of the keywords {keywords}"
            ) from err
    return tuple(out)


def config_from_dict(data: dict) -> ProxyConfig:
    """Validate ``data`` (a parsed KubeProxyConfiguration) and fill every default."""
    check_known_fields(data, config_fields.FIELDS)
    if data.get("apiVersion") != config_fields.API_VERSION:
        raise ConfigError(
            "apiVersion", f"expected {config_fields.API_VERSION!r}, got {data.get('apiVersion')!r}"
        )
    if data.get("kind") != config_fields.KIND:
        raise ConfigError("kind", f"expected {config_fields.KIND!r}, got {data.get('kind')!r}")
    mode = _get(data, "mode", str, "", "") or DEFAULT_MODE
    if mode not in config_fields.MODES:
        raise ConfigError("mode", f"unknown mode {mode!r}")
    if mode not in SUPPORTED_MODES:
        raise ConfigError(
            "mode",
            f"mode {mode!r} is not supported by kpyops (use one of {', '.join(SUPPORTED_MODES)})",
        )
    d = ProxyConfig(mode=mode)
    client = data.get("clientConnection") or {}
    return ProxyConfig(
        mode=mode,
        hostname=(_get(data, "hostnameOverride", str, "", "") or d.hostname).lower(),
        bind_address=_get(data, "bindAddress", str, "", d.bind_address),
        healthz_bind_address=_get(data, "healthzBindAddress", str, "", d.healthz_bind_address),
        metrics_bind_address=_get(data, "metricsBindAddress", str, "", d.metrics_bind_address),
        cluster_cidrs=_cidrs(_get(data, "clusterCIDR", str, "", ""), "clusterCIDR")
        if data.get("clusterCIDR")
        else (),
        node_port_addresses=_node_port_addresses(_get(data, "nodePortAddresses", list, "", [])),
        kubeconfig=_get(client, "kubeconfig", str, "clientConnection.", ""),
        config_sync_period=_duration(data, "configSyncPeriod", "", d.config_sync_period),
        iptables=_iptables(data.get("iptables") or {}),
        nftables=_nftables(data.get("nftables") or {}),
        ipvs=_ipvs(data.get("ipvs") or {}),
        conntrack=_conntrack(data.get("conntrack") or {}),
    )


def load_config(path: str | Path) -> ProxyConfig:
    """Read and validate a KubeProxyConfiguration YAML file."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        raise ConfigError("", f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError("", f"{path}: expected a KubeProxyConfiguration mapping")
    try:
        return config_from_dict(data)
    except ConfigError as err:
        raise ConfigError(err.path, err.message, file=str(path)) from err


def split_host_port(address: str) -> tuple[str, int]:
    """'0.0.0.0:10256' / '[::]:10256' / ':10256' -> (host, port)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)
