"""The SSRF guard: which destination addresses may be connected to."""

from __future__ import annotations

import ipaddress

import pytest

from imgpipe_runtime.netguard import (
    BlockedAddressError,
    check_address,
    embedded_ipv4,
    is_public_address,
    literal_ip,
)

REFUSED = [
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "10.255.255.255",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.0.1",
    "192.168.255.255",
    "169.254.169.254",
    "100.64.0.1",
    "100.127.255.254",
    "0.0.0.0",
    "255.255.255.255",
    "::",
    "::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "2002:7f00:1::",
    "2002:a00:1::1",
    "64:ff9b::7f00:1",
    "64:ff9b::a00:1",
    "64:ff9b:1::808:808",
    "224.0.0.1",
    "239.255.255.250",
    "ff02::1",
    "2001:db8::1",
    "::127.0.0.1",
    "::ffff:0:7f00:1",
]

ACCEPTED = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "172.32.0.1",
    "100.128.0.1",
    "2606:4700::1111",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
]


@pytest.mark.parametrize("address", REFUSED)
def test_internal_address_is_not_public(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is False


@pytest.mark.parametrize("address", REFUSED)
def test_check_address_refuses_internal_address(address: str) -> None:
    with pytest.raises(
        BlockedAddressError, match="loopback, private, link-local or otherwise internal"
    ):
        check_address(address)


@pytest.mark.parametrize("address", ACCEPTED)
def test_globally_routable_address_is_public(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize("address", ACCEPTED)
def test_check_address_lets_public_address_through(address: str) -> None:
    assert check_address(address) is None


def test_blocked_address_error_is_an_os_error_so_aiohttp_wraps_it_as_a_connect_error() -> None:
    assert issubclass(BlockedAddressError, OSError)


def test_check_address_ignores_the_ipv6_zone_id() -> None:
    with pytest.raises(BlockedAddressError):
        check_address("fe80::1%eth0")


def test_every_blocked_address_gets_the_same_message_so_aiohappyeyeballs_keeps_the_error() -> None:
    messages = set()
    for address in ("127.0.0.1", "::1", "10.0.0.1"):
        with pytest.raises(BlockedAddressError) as caught:
            check_address(address)
        messages.add(str(caught.value))
    assert len(messages) == 1


def test_check_address_refuses_a_host_name_instead_of_guessing() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        check_address("localhost")


@pytest.mark.parametrize(
    ("address", "inner"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("2002:7f00:1::", "127.0.0.1"),
        ("64:ff9b::7f00:1", "127.0.0.1"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "192.0.2.45"),
    ],
    ids=["mapped", "6to4", "nat64", "teredo"],
)
def test_embedded_ipv4_is_extracted_from_ipv6_transition_addresses(
    address: str, inner: str
) -> None:
    assert embedded_ipv4(ipaddress.ip_address(address)) == ipaddress.IPv4Address(inner)


@pytest.mark.parametrize("address", ["127.0.0.1", "2606:4700::1111", "::1"])
def test_plain_addresses_carry_no_embedded_ipv4(address: str) -> None:
    assert embedded_ipv4(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", ipaddress.IPv4Address("127.0.0.1")),
        ("93.184.216.34", ipaddress.IPv4Address("93.184.216.34")),
        ("::1", ipaddress.IPv6Address("::1")),
        ("[::1]", ipaddress.IPv6Address("::1")),
        ("[2606:4700::1111]", ipaddress.IPv6Address("2606:4700::1111")),
    ],
)
def test_literal_ip_reads_an_address_written_as_one(
    host: str, expected: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> None:
    assert literal_ip(host) == expected


@pytest.mark.parametrize(
    "host", ["example.com", "localhost", "cdn.example.co.uk", "", "[]", "1.2.3.4.example"]
)
def test_literal_ip_returns_none_for_a_host_name(host: str) -> None:
    assert literal_ip(host) is None
