"""Where webhooks may go: no private, loopback, link-local or otherwise special address (SSRF),
unless the deployment allows its network by name (the embedded stack allows loopback).

Ingest checks a URL when a tenant names it (an endpoint, a job's `webhook_url`); delivery
checks it again when it sends, on the addresses the name resolves to then, and connects to
the address it checked, so a name that resolves elsewhere a second time gains nothing.
"""

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
RESOLVE_TIMEOUT_S = 3.0


class RefusedTarget(ValueError):
    """The URL is not one webhooks may be sent to; the message says why."""


def allowed_networks(names: list[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(name, strict=False) for name in names]


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def check_address(address: IPAddress, allowed: list) -> None:
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
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


async def checked_address(url: str, allowed: list) -> IPAddress:
    """The address to connect to for `url`, once every address its host resolves to is allowed."""
    _, host, port = parsed_target(url)
    addresses = await resolve(host, port)
    for address in addresses:
        check_address(address, allowed)
    return addresses[0]
