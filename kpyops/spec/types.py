"""The value types of the spec, strict where a wrong type would still be accepted silently.

YAML and pydantic would both read ``count: true`` as 1, ``podCIDR: 167772160`` as
10.0.0.0/32 and ``enabled: "no"`` as false: here a count is a whole number, a flag is true or
false, an address or CIDR is text in its usual notation. Kubelet's own value syntaxes
(quantities, percentages, CPU lists, eviction signals) are checked here as kubelet would.
"""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import Field, PlainSerializer, PlainValidator, Strict, WithJsonSchema

from kpyops.spec.errors import describe_pattern, one_line, what

Count = Annotated[int, Strict()]
Flag = Annotated[bool, Strict()]
Port = Annotated[int, Strict(), Field(ge=1, le=65535)]

DURATION = describe_pattern(r"^([0-9]{1,9}(\.[0-9]{1,9})?(ns|us|ms|s|m|h)){1,6}$",
                            "must be a duration such as 30s, 500ms or 1m30s")
Duration = Annotated[str, Field(pattern=DURATION, description="Go duration, e.g. 30s, 1m30s")]


def _ip_type(type_: Any, make: Any, words: str, example: str, fmt: str) -> Any:
    """An address or network type read only from text, or an object it already is."""

    def parse(value: object) -> Any:
        if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address,
                              ipaddress.IPv4Network, ipaddress.IPv6Network)):
            value = str(value)  # an object of another kind is checked as its text
        if not isinstance(value, str):
            raise ValueError(f"must be {words} written as text, such as {example}, not "
                             f"{what(value)}")
        try:
            return make(value)
        except ValueError as err:
            raise ValueError(f"{one_line(repr(value), 80)} is not {words} (such as {example}): "
                             f"{one_line(err, 120)}") from None

    return Annotated[type_, PlainValidator(parse), PlainSerializer(str, when_used="json"),
                     WithJsonSchema({"type": "string", "format": fmt})]


def _either(v4: Any, v6: Any) -> Any:
    def make(text: str) -> Any:
        return v6(text) if ":" in text else v4(text)

    return make


IPv4Net = _ip_type(ipaddress.IPv4Network, ipaddress.IPv4Network, "an IPv4 CIDR",
                   "10.0.0.0/16", "ipv4network")
IPv6Net = _ip_type(ipaddress.IPv6Network, ipaddress.IPv6Network, "an IPv6 CIDR",
                   "fd00:10::/56", "ipv6network")
IPNet = _ip_type(ipaddress.IPv4Network | ipaddress.IPv6Network,
                 _either(ipaddress.IPv4Network, ipaddress.IPv6Network), "a CIDR",
                 "10.0.0.0/16", "ipvanynetwork")
IPv4Addr = _ip_type(ipaddress.IPv4Address, ipaddress.IPv4Address, "an IPv4 address",
                    "10.0.0.1", "ipv4")
IPAddr = _ip_type(ipaddress.IPv4Address | ipaddress.IPv6Address,
                  _either(ipaddress.IPv4Address, ipaddress.IPv6Address), "an IP address",
                  "10.0.0.1", "ipvanyaddress")


# --- kubelet's value syntaxes -------------------------------------------------------------

# resource.Quantity: a decimal number, then a binary (Ki..Ei) or decimal (n..E) suffix or
# an exponent (e3). Bounded in length so that a number is a number, not a megabyte.
QUANTITY = re.compile(r"^[+-]?(\d{1,18}(\.\d{0,9})?|\.\d{1,9})(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E"
                      r"|[eE][+-]?\d{1,2})?$")
PERCENTAGE = re.compile(r"^\d{1,3}(\.\d{1,6})?%$")
# Eviction signals kubelet knows (pkg/kubelet/eviction/api).
EVICTION_SIGNALS = (
    "memory.available", "nodefs.available", "nodefs.inodesFree", "imagefs.available",
    "imagefs.inodesFree", "containerfs.available", "containerfs.inodesFree", "pid.available",
)
# What kubeReserved / systemReserved may reserve (kubelet: "cannot reserve X resource").
RESERVABLE = ("cpu", "memory", "ephemeral-storage", "pid")
MAX_CPU_ID = 8191  # Linux's largest NR_CPUS


def quantity(text: str) -> Decimal | None:
    """The sign-bearing number of a Kubernetes quantity ("100Mi" -> 100), or None."""
    if not isinstance(text, str) or not QUANTITY.match(text):
        return None
    number = re.match(r"^[+-]?[\d.]+", text)
    try:
        return Decimal(number.group()) if number else None
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        return None


def check_reserved(resources: dict[str, str]) -> dict[str, str]:
    for name, value in resources.items():
        if name not in RESERVABLE:
            raise ValueError(f"cannot reserve {one_line(repr(name), 60)}: reserve "
                             f"{', '.join(RESERVABLE)}")
        q = quantity(value)
        if q is None:
            raise ValueError(f"{name}: {one_line(repr(value), 60)} is not a quantity (such as "
                             "100m, 256Mi or 1Gi)")
        if q < 0:
            raise ValueError(f"{name}: {value} is negative")
    return resources


def check_thresholds(thresholds: dict[str, str]) -> dict[str, str]:
    """Eviction thresholds as kubelet reads them: a known signal, then a positive quantity
    or a percentage from 0% to 100%."""
    for signal, value in thresholds.items():
        check_signal(signal)
        if isinstance(value, str) and value.endswith("%"):
            if not PERCENTAGE.match(value) or Decimal(value[:-1]) > 100:
                raise ValueError(f"{signal}: {one_line(repr(value), 60)} is not a percentage "
                                 "from 0% to 100%")
            continue
        q = quantity(value)
        if q is None:
            raise ValueError(f"{signal}: {one_line(repr(value), 60)} is neither a quantity "
                             "(such as 100Mi) nor a percentage (such as 10%)")
        if q <= 0:
            raise ValueError(f"{signal}: threshold {value} must be more than zero")
    return thresholds


def check_signal(signal: str) -> str:
    if signal not in EVICTION_SIGNALS:
        raise ValueError(f"unknown eviction signal {one_line(repr(signal), 60)}: use one of "
                         f"{', '.join(EVICTION_SIGNALS)}")
    return signal


CPU_LIST = re.compile(r"^\d{1,5}(-\d{1,5})?(,\d{1,5}(-\d{1,5})?)*$")


def check_cpu_list(text: str) -> str:
    """A Linux CPU list as kubelet's cpuset.Parse reads it: 0-3,8, ranges going up."""
    if not CPU_LIST.match(text):
        raise ValueError(f"{one_line(repr(text), 60)} is not a CPU list: CPU numbers and "
                         "ranges separated by commas, such as 0-1,4")
    for part in text.split(","):
        first, _, last = part.partition("-")
        lo, hi = int(first), int(last or first)
        if lo > hi:
            raise ValueError(f"{part} in {text!r} is not a range: the first CPU must not be "
                             f"after the last ({hi}-{lo})")
        if hi > MAX_CPU_ID:
            raise ValueError(f"CPU {hi} in {text!r}: CPU numbers go up to {MAX_CPU_ID}")
    return text


def reserved_cpu(text: str | None) -> Decimal:
    q = quantity(text) if text is not None else None
    return q if q is not None else Decimal(0)


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))
