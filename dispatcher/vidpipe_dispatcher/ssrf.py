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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from vidpipe.webhooks import AllowList, IPAddress, address_refusal, internal_name, normal_host

Resolver = Callable[..., Sequence[tuple[Any, ...]]]


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


def forbidden(ip: IPAddress) -> str | None:
    """Why an address may not be reached, naming it (None: a public address): the shared rule,
    vidpipe.webhooks.address_refusal."""
    why = address_refusal(ip)
    return None if why is None else f"{ip}: {why}"


def check(url: str, allow: AllowList, resolve: Resolver = socket.getaddrinfo) -> tuple[Target, str]:
    """The URL's target and the checked address to connect to, or Refused saying why.

    Every address the name resolves to must pass: a name answering with one public and one
    private address is refused, or a retry could land on the private one.
    """
    target = parse_url(url)
    try:
        # IDNA, as the resolver will: look-alike dots (U+3002, ...) become '.' before the name
        # rule reads the suffix.
        host = normal_host(target.host.encode("idna").decode("ascii"))
    except UnicodeError:
        raise Refused(f"{target.host!r} is not a valid host name") from None
    named = allow.allows_host(host)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is None and not named and internal_name(host):
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
