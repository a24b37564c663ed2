"""The SSRF policy as a pure function: literal addresses, IPv6 forms, names (resolved by a
stand-in resolver here; tests/integration/dispatcher resolves for real)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from vidpipe.webhooks import AllowList
from vidpipe_dispatcher.ssrf import Refused, check, forbidden, parse_url

pytestmark = pytest.mark.unit

NONE = AllowList()


def resolver(table: dict[str, list[str]]) -> Any:
    """getaddrinfo's answer shape for the names in `table`; an unknown name does not resolve."""

    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in table[host]]

    return resolve


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.9.9.9", "::1", "0.0.0.0", "::", "10.0.0.1", "172.16.5.4",
        "192.168.1.1", "fc00::1", "fd12:3456::1", "169.254.169.254", "169.254.1.1", "fe80::1",
        "fd00:ec2::254", "100.64.0.1", "100.127.255.254", "224.0.0.1", "ff02::1", "240.0.0.1",
        "255.255.255.255", "192.0.2.1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
        "2002:7f00:0001::", "2002:a9fe:a9fe::1", "64:ff9b::a9fe:a9fe",
        # Python calls these global: IPv4-compatible and SIIT forms of 127.0.0.1, local-use
        # NAT64 of 169.254.169.254, deprecated site-local.
        "::7f00:1", "::ffff:0:7f00:1", "64:ff9b:1::a9fe:a9fe", "fec0::1",
    ],
)  # fmt: skip
def test_non_public_addresses_are_refused(address: str) -> None:
    # Fails if any loopback, private, link-local, metadata, CGNAT, multicast, reserved or
    # unspecified address, or an IPv6 form carrying one, were let through.
    import ipaddress

    assert forbidden(ipaddress.ip_address(address)) is not None
    literal = f"[{address}]" if ":" in address else address
    with pytest.raises(Refused):
        check(f"https://{literal}/hook", NONE)


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2002:808:808::"]
)
def test_public_addresses_pass_and_are_what_we_connect_to(address: str) -> None:
    # Fails if the policy refused the public internet, or returned another address than the
    # checked one.
    literal = f"[{address}]" if ":" in address else address
    target, connect_to = check(
        f"https://{literal}:8443/h?x=1", NONE, resolver({address: [address]})
    )
    assert connect_to == address
    assert (target.port, target.path) == (8443, "/h?x=1")


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/", "file:///etc/passwd", "gopher://x.example/", "https://user:pw@example.com/",
     "https://user@example.com/", "http:///nohost", "https://example.com:99999/"],
)  # fmt: skip
def test_bad_urls_are_refused(url: str) -> None:
    # Fails if a non-HTTP scheme, userinfo (credentials that would leak in logs) or a broken
    # URL reached the network.
    with pytest.raises(Refused):
        parse_url(url)


@pytest.mark.parametrize(
    "host",
    ["localhost", "receiver", "api.jobs.svc", "api.jobs.svc.cluster.local", "x.cluster.local",
     "metadata.google.internal", "LOCALHOST.", "printer.local", "api.jobs\u3002svc"],
)  # fmt: skip
def test_cluster_internal_and_local_names_are_refused_before_any_lookup(host: str) -> None:
    # Fails if a cluster-internal name were resolved at all (the resolver here answers with a
    # public address, so only the name rule can refuse).
    public = resolver({host.lower().rstrip("."): ["8.8.8.8"]})
    with pytest.raises(Refused, match="internal or local name"):
        check(f"http://{host}/", NONE, public)


def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    # Fails if names were trusted without checking what they resolve to.
    with pytest.raises(Refused, match=r"10\.0\.0\.7"):
        check("https://evil.example.com/", NONE, resolver({"evil.example.com": ["10.0.0.7"]}))


def test_one_private_address_among_public_ones_refuses_the_name() -> None:
    # Fails if only the first answer were checked (a retry could land on the private one).
    table = {"mixed.example.com": ["8.8.8.8", "169.254.169.254"]}
    with pytest.raises(Refused, match="metadata"):
        check("https://mixed.example.com/", NONE, resolver(table))


def test_an_unresolvable_name_is_refused_with_the_reason() -> None:
    # Fails if a lookup failure escaped as an exception instead of a refusal.
    with pytest.raises(Refused, match="does not resolve"):
        check("https://nowhere.example.com/", NONE, resolver({}))


def test_the_allow_list_admits_its_cidrs_and_hosts_only() -> None:
    # Fails if the allow-list were ignored, or admitted more than it names.
    allow = AllowList.parse(["127.0.0.1/32", "10.96.0.0/12", "Receiver.Jobs.SVC", ".hooks.svc"])
    assert check("http://127.0.0.1:9000/h", allow)[1] == "127.0.0.1"
    table = {"hooks.example.com": ["10.100.0.5"], "receiver.jobs.svc": ["10.244.1.9"]}
    assert check("http://hooks.example.com/", allow, resolver(table))[1] == "10.100.0.5"
    assert check("http://receiver.jobs.svc/", allow, resolver(table))[1] == "10.244.1.9"
    table["a.hooks.svc"] = ["10.244.2.2"]
    assert check("http://a.hooks.svc/", allow, resolver(table))[1] == "10.244.2.2"
    table["other.jobs.svc"] = ["10.244.1.10"]
    with pytest.raises(Refused):
        check("http://other.jobs.svc/", allow, resolver(table))
    with pytest.raises(Refused):
        check("http://127.0.0.2/", allow)
    with pytest.raises(Refused):
        check("http://169.254.169.254/", allow)
    # An allowed address does not make an internal name acceptable.
    with pytest.raises(Refused, match="internal"):
        check("http://localhost/", allow, resolver({"localhost": ["127.0.0.1"]}))


def test_host_header_carries_the_port_only_when_not_default() -> None:
    # Fails if the Host header differed from what the URL's receiver expects.
    assert parse_url("https://h.example.com/x").host_header == "h.example.com"
    assert parse_url("http://h.example.com:8080/x").host_header == "h.example.com:8080"
    assert parse_url("https://[2606:4700::1]:8443/").host_header == "[2606:4700::1]:8443"
