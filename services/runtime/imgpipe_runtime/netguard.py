"""Outbound-connection guard against SSRF, shared by every service that fetches user URLs.

The check runs on the socket address actually connected to (aiohttp's `socket_factory` hook
receives each resolved address just before connecting), so a hostname that resolves to a
public address at validation time and to 127.0.0.1 at connect time (DNS rebinding) is still
refused, and so is every redirect hop.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any

from imgpipe_runtime.errors import ImgpipeRuntimeError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ranges `is_global` lets through but a server-side fetcher must not reach anyway.
_EXTRA_BLOCKED = [ipaddress.ip_network(n) for n in ("100.64.0.0/10", "64:ff9b:1::/48")]


BLOCKED_MESSAGE = (
    "the address is loopback, private, link-local or otherwise internal; "
    "IMGPIPE_ALLOW_PRIVATE_NETWORKS allows it"
)


_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")


class BlockedAddressError(ImgpipeRuntimeError, OSError):
    """The destination is a loopback, private, link-local or otherwise internal address."""


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo, NAT64), if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(ip: IPAddress) -> bool:
    """True only for globally routable unicast addresses."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        return is_public_address(inner)
    if ip.is_multicast or not ip.is_global:
        return False
    # Only global unicast is routable IPv6; this also refuses the deprecated IPv4-compatible
    # (::a.b.c.d) and IPv4-translated (::ffff:0:a.b.c.d) forms.
    if isinstance(ip, ipaddress.IPv6Address) and ip not in _GLOBAL_UNICAST_V6:
        return False
    return not any(ip in net for net in _EXTRA_BLOCKED if net.version == ip.version)


def check_address(host: str) -> None:
    """Raise BlockedAddressError unless `host` (a literal IP address) is public."""
    ip = ipaddress.ip_address(host.split("%", 1)[0])
    if not is_public_address(ip):
        # One message for every address: when a name resolves to several blocked addresses,
        # aiohappyeyeballs re-raises our exception only if all their messages are equal (else
        # it folds them into a plain OSError and the reason would be lost).
        raise BlockedAddressError(BLOCKED_MESSAGE)


def literal_ip(host: str) -> IPAddress | None:
    """`host` as an IP address if it is written as one (brackets allowed), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SocketFactory = Callable[[Any], socket.socket]


def guarded_socket_factory(allowed: Sequence[IPNetwork] = ()) -> SocketFactory:
    """An aiohttp `socket_factory` that refuses internal destinations before connecting,
    except those inside the explicitly `allowed` networks."""

    def factory(addr_info: Any) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if not any(ip in network for network in allowed):
            check_address(sockaddr[0])
        sock = socket.socket(family=family, type=type_, proto=proto)
        sock.setblocking(False)
        return sock

    return factory


def socket_factory_for(allow_private: bool, allowed: Sequence[IPNetwork]) -> SocketFactory | None:
    """None (aiohttp's default, no checks) when private networks are allowed outright."""
    return None if allow_private else guarded_socket_factory(allowed)


def is_allowed(ip: IPAddress, allow_private: bool, allowed: Sequence[IPNetwork]) -> bool:
    return allow_private or is_public_address(ip) or any(ip in n for n in allowed)
