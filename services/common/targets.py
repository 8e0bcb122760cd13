"""Where webhooks may go, and where images to evaluate may be fetched from: no private, loopback, link-local or otherwise special address (SSRF),
unless the deployment allows its network by name (the embedded stack allows loopback).

Ingest checks a URL when a tenant names it (an endpoint, a job's `webhook_url`); delivery
checks it again when it sends, on the addresses the name resolves to then, and connects to
the address it checked, so a name that resolves elsewhere a second time gains nothing.
"""

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
RESOLVE_TIMEOUT_S = 3.0


class RefusedTarget(ValueError):
    """The URL is not one webhooks may be sent to; the message says why."""


def allowed_networks(names: list[str]) -> list[IPNetwork]:
    return [ipaddress.ip_network(name, strict=False) for name in names]


# IPv6 forms that carry an IPv4 address (RFC 4291, 6052, 6145, 3056, 4380): a private or
# metadata address hides behind each as easily as it shows in dotted form.
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")  # a site's own translator: never public
SIIT_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# Ranges the standard library counts as global that no webhook receiver lives in: IETF
# protocol assignments (192.0.0.8, the IPv4 dummy address, among them) and deprecated
# site-local IPv6, which some networks still route internally.
NEVER_PUBLIC = [ipaddress.ip_network("192.0.0.0/24"), ipaddress.ip_network("fec0::/10")]


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 address carries, by any of the forms above."""
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    found = []
    if address.ipv4_mapped:
        found.append(address.ipv4_mapped)
    if address in NAT64_WELL_KNOWN or address in SIIT_TRANSLATED or address in IPV4_COMPATIBLE:
        found.append(low32)
    if address.sixtofour:
        found.append(address.sixtofour)
    if address.teredo:
        found.extend(address.teredo)  # the relay server and the client, de-obfuscated
    return found


def is_public(address: IPAddress) -> bool:
    """Globally routable, not multicast, and so is every IPv4 address it carries."""
    if not address.is_global or address.is_multicast or any(address in net for net in NEVER_PUBLIC
                                                           if net.version == address.version):
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address in NAT64_LOCAL_USE:
            return False
        return all(is_public(inner) for inner in embedded_ipv4(address))
    return True


def check_address(address: IPAddress, allowed: list[IPNetwork]) -> None:
    if not is_public(address) and not any(address in network for network in allowed):
        raise RefusedTarget(f"{address} is a private, loopback, link-local or reserved address")


def parsed_target(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an absolute http(s) URL without credentials."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise RefusedTarget(f"{url!r} is not a valid URL: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedTarget(f"{url!r} is not an absolute http or https URL")
    if parts.username is not None or parts.password is not None:
        raise RefusedTarget("a webhook URL cannot carry credentials")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S)
    except (OSError, TimeoutError) as error:
        raise RefusedTarget(f"the host {host!r} does not resolve: {error}") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


async def checked_address(url: str, allowed: list[IPNetwork]) -> IPAddress:
    """The address to connect to for `url`, once every address its host resolves to is allowed."""
    _, host, port = parsed_target(url)
    addresses = await resolve(host, port)
    for address in addresses:
        check_address(address, allowed)
    return addresses[0]


def pinned_request(url: str, address: IPAddress) -> tuple[str, dict[str, str], dict[str, str]]:
    """The URL with the checked address in place of the host, the Host header, and the TLS
    server name, so the connection goes where the check said, whatever DNS says next."""
    parts = httpx.URL(url)
    extensions = {"sni_hostname": parts.host} if parts.scheme == "https" else {}
    return str(parts.copy_with(host=str(address))), {"Host": parts.netloc.decode()}, extensions
