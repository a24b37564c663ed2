"""What the API and the webhook dispatcher both need about endpoints: new secrets, new
deliveries, and which network addresses a webhook may never reach (the SSRF guard).

The API applies `address_refusal` to IP literals when an endpoint is registered; the dispatcher
applies it to every address a name resolves to, right before it connects. The documents
themselves are vidpipe.events.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Final

from vidpipe.events import Delivery, Doc, delivery_id

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_webhook_id() -> str:
    return f"wh_{secrets.token_hex(12)}"


def new_delivery(event: str, webhook: str, owner: str, at: datetime) -> Delivery:
    """A delivery of `event` to `webhook`, due at `at`."""
    return Delivery(
        id=delivery_id(event, webhook),
        event_id=event,
        webhook_id=webhook,
        owner=owner,
        next_attempt_at=at,
        created_at=at,
    )


def delivery_insert(delivery: Delivery) -> tuple[Doc, Doc]:
    """Filter and update of an idempotent insert (`upsert=True`), like `outbox_insert`: the id
    is deterministic, so whoever creates a delivery twice (a replay, the dispatcher's fan-out)
    leaves one."""
    fields = delivery.model_dump(
        by_alias=True, exclude={"id"}
    )  # the upsert takes _id from the filter
    return {"_id": delivery.id}, {"$setOnInsert": fields}


IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

# Named first: they are link-local, private or shared anyway, but the log should say what was
# aimed at (AWS/GCP/Azure, AWS over IPv6, Alibaba).
_METADATA: Final = frozenset(
    ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_CGNAT: Final = ip_network("100.64.0.0/10")
_NAT64: Final = ip_network("64:ff9b::/96")
# Further IPv6 forms whose last 32 bits are an IPv4 address some translator may reach:
# IPv4-compatible (deprecated, ::a.b.c.d) and IPv4-translated (SIIT, ::ffff:0:a.b.c.d).
_IPV4_TAIL: Final = (ip_network("::/96"), ip_network("::ffff:0:0:0/96"))
# Local-use NAT64 (RFC 8215): a network's own translator, never a public receiver.
_LOCAL_NAT64: Final = ip_network("64:ff9b:1::/48")
# Names that resolve only inside a host, a LAN or a Kubernetes cluster (`svc`, `svc.cluster.local`
# and pod DNS all end in one of these); GCP's metadata server is metadata.google.internal.
INTERNAL_SUFFIXES: Final = (
    ".localhost", ".localdomain", ".local", ".internal", ".svc", ".cluster.local", ".home.arpa",
)  # fmt: skip
INTERNAL_NAMES: Final = frozenset({"localhost", "localdomain"})


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, 6to4, Teredo client, NAT64)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or any(address in net for net in _IPV4_TAIL):
        # Not `::` and `::1`: they are the unspecified and the loopback address themselves.
        return IPv4Address(int(address) & 0xFFFFFFFF) if int(address) > 1 else None
    return None


def address_refusal(address: IPAddress) -> str | None:
    """Why a webhook may not go to this address; None for a public unicast address. The one
    rule: the API applies it to IP literals when an endpoint is saved, the dispatcher to every
    address a name resolves to, right before it connects.

    An IPv6 form that carries an IPv4 address (`::ffff:127.0.0.1`, IPv4-compatible `::7f00:1`,
    SIIT `::ffff:0:7f00:1`, 6to4, Teredo, NAT64) is judged as that IPv4 address.
    """
    if isinstance(address, IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            why = address_refusal(inner)
            if why is None or address.ipv4_mapped is not None:
                return why
            return f"{why} (inside IPv6 {address})"
    if address in _METADATA:
        return "cloud metadata address"
    if isinstance(address, IPv6Address) and address in _LOCAL_NAT64:
        return "local-use NAT64 address"
    if isinstance(address, IPv6Address) and address.is_site_local:
        return "site-local address"
    if address.version == 4 and address in _CGNAT:
        return "shared (CGNAT) address"
    if address.is_loopback:
        return "loopback address"
    if address.is_link_local:
        return "link-local address (cloud metadata services live there)"
    if address.is_multicast:
        return "multicast address"
    if address.is_private:
        return "private address"
    if not address.is_global:
        return "not a public address"
    return None


def normal_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def internal_name(host: str) -> bool:
    """A name that resolves only inside a host, a LAN or a cluster (a single label resolves
    through the cluster's search domains); `host` in `normal_host` form."""
    return "." not in host or host in INTERNAL_NAMES or host.endswith(INTERNAL_SUFFIXES)


@dataclass(frozen=True)
class AllowList:
    """Destinations an operator allows on purpose (in-cluster receivers, tests): the setting
    the API (`webhook_allowed_hosts`) and the dispatcher (`allowed_hosts`) share, one value in
    the chart (`webhooks.allowedHosts`): exact host names, `.suffix`es, IPs or CIDRs."""

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
                networks.append(ip_network(entry, strict=False))
            except ValueError:
                if entry.startswith("."):
                    suffixes.append(normal_host(entry))
                else:
                    hosts.add(normal_host(entry))
        return cls(tuple(networks), frozenset(hosts), tuple(suffixes))

    def allows_host(self, host: str) -> bool:
        return host in self.hosts or any(host.endswith(s) or host == s[1:] for s in self.suffixes)

    def allows_address(self, address: IPAddress) -> bool:
        return any(address.version == n.version and address in n for n in self.networks)
