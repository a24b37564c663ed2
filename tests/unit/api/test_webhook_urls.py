"""The webhook URL check at registration (`vidpipe_api.webhooks.check_url`) and the address
verdict it shares with the dispatcher (`vidpipe.webhooks.address_refusal`)."""

from __future__ import annotations

import ipaddress

import pytest

from vidpipe.webhooks import address_refusal
from vidpipe_api.errors import WebhookUrlRefused
from vidpipe_api.webhooks import check_url

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("address", "verdict"),
    [
        ("93.184.216.34", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.1", "loopback address"),
        ("::1", "loopback address"),
        ("::ffff:127.0.0.1", "loopback address"),
        ("169.254.169.254", "cloud metadata address"),
        ("fe80::1", "link-local address (cloud metadata services live there)"),
        ("10.0.0.1", "private address"),
        ("::ffff:192.168.1.1", "private address"),
        ("fd00:ec2::254", "cloud metadata address"),
        ("fd00::1", "private address"),
        ("224.0.0.251", "multicast address"),
        ("100.100.100.200", "cloud metadata address"),  # Alibaba's, in the CGNAT range
        ("100.64.0.1", "shared (CGNAT) address"),
        ("2002:7f00:1::", "loopback address (inside IPv6 2002:7f00:1::)"),  # 6to4 of 127.0.0.1
        ("0.0.0.0", "private address"),
    ],
)
def test_address_verdicts(address: str, verdict: str | None) -> None:
    # Fails if an internal address is judged public (or a public one refused), including the
    # IPv4-mapped IPv6 spelling of an internal IPv4 address.
    assert address_refusal(ipaddress.ip_address(address)) == verdict


@pytest.mark.parametrize(
    "url",
    [
        "https://receiver.example.com/hooks?x=1",
        "http://93.184.216.34:8080/h",
        "https://[2606:4700:4700::1111]/h",
        "https://xn--bcher-kva.example/h",
        "https://bücher.example/h",
    ],
)
def test_public_urls_pass_unchanged(url: str) -> None:
    # Fails if a public receiver is refused or its URL rewritten.
    assert check_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://127。0。0。1/h",  # ideographic full stops: IDNA makes them dots
        "http://0177.0.0.1/h",  # octal, as inet_aton reads it
        "http://10.1/h",
        "https://hooks.internal/h",
        "https://printer.local/h",
        "https://x.home.arpa/h",
        "https://a.b.c.9/h",
        "https:///h",
        "https://receiver.example.com:0x50/h",
        "https://receiver.example.com/h\n",
        "javascript:alert(1)",
    ],
)
def test_disguised_internal_and_malformed_urls_are_refused(url: str) -> None:
    # Fails if a spelling that a resolver or HTTP client maps to an internal host, or a URL
    # that is not one, gets through.
    with pytest.raises(WebhookUrlRefused):
        check_url(url)


def test_the_allow_list_names_hosts_suffixes_and_networks() -> None:
    # Fails if an allow-list entry lets through more (or less) than it names.
    allowed = ["10.1.0.0/16", ".apps.svc", "hooks"]
    for url in ("http://10.1.2.3/h", "http://x.apps.svc/h", "http://apps.svc/h", "http://hooks/h"):
        assert check_url(url, allowed) == url
    for url in ("http://10.2.0.1/h", "http://x.other.svc/h", "http://hooks2/h", "http://[::1]/h"):
        with pytest.raises(WebhookUrlRefused):
            check_url(url, allowed)
