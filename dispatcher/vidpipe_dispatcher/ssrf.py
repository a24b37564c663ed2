"""Where the dispatcher may send: tenants choose the URL, so a URL is a request to reach a place.

A tenant's endpoint must not make the dispatcher a proxy into the cluster or the cloud: its
name is resolved here, every address it resolves to is checked, and the attempt then connects
to the checked address itself (deliver.py), so a second lookup answering differently (DNS
rebinding) never happens. Cluster-internal names are refused before any lookup. An explicit
allow-list (CIDRs and host names) lets an operator deliver to in-cluster receivers on purpose.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from vidpipe.webhooks import address_refusal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

# Named first: they are link-local or private anyway, but the log should say what was aimed at.
_METADATA: Final = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_CGNAT: Final = ipaddress.ip_network("100.64.0.0/10")
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
# The API's list (vidpipe_api.webhooks, which refuses these names when an endpoint is saved):
# names that resolve only inside a host, a LAN or a cluster; GCP's metadata server is
# metadata.google.internal.
_INTERNAL_SUFFIXES: Final = (
    ".localhost", ".localdomain", ".local", ".internal", ".svc", ".cluster.local", ".home.arpa",
)  # fmt: skip


class Refused(Exception):
    """The URL may not be delivered to; the message says why (it goes in the delivery log)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written in the URL (the TLS name and the Host header)
    port: int
    path: str  # path and query, never empty

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


@dataclass(frozen=True)
class AllowList:
    """Destinations an operator allows on purpose (in-cluster receivers, tests), written as the
    API's `webhook_allowed_hosts`: exact host names, `.suffix`es, IPs or CIDRs."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)
    suffixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        suffixes: list[str] = []
        for entry in filter(None, (e.strip() for e in entries)):
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                if entry.startswith("."):
                    suffixes.append(_normal_host(entry))
                else:
                    hosts.add(_normal_host(entry))
        return cls(tuple(networks), frozenset(hosts), tuple(suffixes))

    def allows_host(self, host: str) -> bool:
        return host in self.hosts or any(host.endswith(s) or host == s[1:] for s in self.suffixes)

    def allows_address(self, ip: IPAddress) -> bool:
        return any(ip.version == n.version and ip in n for n in self.networks)


def _normal_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def parse_url(url: str) -> Target:
    """The URL's parts, or Refused for a scheme other than http(s), userinfo or no host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"malformed URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise Refused(f"scheme {parts.scheme or '(none)'!r} is not http or https")
    if parts.username is not None or parts.password is not None:
        raise Refused("URLs with user information are refused")
    if not parts.hostname:
        raise Refused("the URL has no host")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    default = 443 if parts.scheme == "https" else 80
    return Target(parts.scheme, parts.hostname, port or default, path)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, 6to4, Teredo client, NAT64)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def forbidden(ip: IPAddress) -> str | None:
    """Why an address may not be reached (None: a public address): the shared rule
    (vidpipe.webhooks.address_refusal) plus what it does not name or unwrap (metadata and CGNAT
    addresses, IPv4 carried in 6to4, Teredo and NAT64 addresses)."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            why = forbidden(inner)
            return f"{why} (inside IPv6 {ip})" if why else None
    if ip in _METADATA:
        return f"{ip}: cloud metadata address"
    if ip.version == 4 and ip in _CGNAT:
        return f"{ip}: shared (CGNAT) address"
    why = address_refusal(ip)
    return None if why is None else f"{ip}: {why}"


def _internal_name(host: str) -> bool:
    # Single-label names resolve through the cluster's search domains.
    return "." not in host or host.endswith(_INTERNAL_SUFFIXES)


def check(url: str, allow: AllowList, resolve: Resolver = socket.getaddrinfo) -> tuple[Target, str]:
    """The URL's target and the checked address to connect to, or Refused saying why.

    Every address the name resolves to must pass: a name answering with one public and one
    private address is refused, or a retry could land on the private one.
    """
    target = parse_url(url)
    try:
        # IDNA, as the resolver will: look-alike dots (U+3002, ...) become '.' before the name
        # rule reads the suffix.
        host = _normal_host(target.host.encode("idna").decode("ascii"))
    except UnicodeError:
        raise Refused(f"{target.host!r} is not a valid host name") from None
    named = allow.allows_host(host)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is None and not named and _internal_name(host):
        raise Refused(f"{host!r} is a cluster-internal or local name")
    try:
        infos = resolve(host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Refused(f"{host!r} does not resolve: {exc}") from None
    addresses: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])  # drop an IPv6 zone
        if not named and not allow.allows_address(ip):
            why = forbidden(ip)
            if why:
                raise Refused(f"{host!r} resolves to {why}" if literal is None else why)
        addresses.append(ip)
    if not addresses:
        raise Refused(f"{host!r} resolves to no address")
    return target, str(addresses[0])
