"""Reading HTTP headers: those the services' clients act on (Retry-After), and the address a
request came from behind the proxies an operator names (X-Forwarded-For, Forwarded).

One parser per header for every service; the Python client (clients/python) keeps its own
copy of `retry_after_s`, because it ships alone and cannot import the services.
"""

import email.utils
import ipaddress
import time
from collections.abc import Sequence

import httpx


def retry_after_s(response: httpx.Response) -> float | None:
    """Retry-After in seconds, from either of its forms (delta-seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# ---- the client's address behind proxies the operator names -----------------------------------

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDED_HEADERS = ("x-forwarded-for", "forwarded")


def networks(named: Sequence[str]) -> tuple[Network, ...]:
    """Addresses or CIDR blocks ("10.0.0.0/8", "2001:db8::/32", "192.0.2.7") as networks;
    ValueError naming one that is neither."""
    return tuple(ipaddress.ip_network(name.strip(), strict=False) for name in named)


def client_address(peer: str | None, forwarded: str | None, *, proxies: Sequence[Network]) -> str:
    """The address a request came from. The connection's `peer`, unless the peer is one of the
    operator's `proxies`: then `forwarded` (the header those proxies write: X-Forwarded-For's
    list, or Forwarded's `for=` parameters) is read from the right, skipping the operator's
    proxies, and the first address that is not one of them is the client's. Nobody else's
    header is believed, so a client cannot choose its own address; a hop that is not an
    address ("unknown", an obfuscated name) leaves the proxy that reported it."""
    reporter = _address(peer)
    if reporter is None or not _among(reporter, proxies) or not forwarded:
        return peer or "unknown"
    for hop in reversed(_hops(forwarded)):
        address = _address(hop)
        if address is None:
            break
        if not _among(address, proxies):
            return str(address)
        reporter = address
    return str(reporter)


def _hops(header: str) -> list[str]:
    """X-Forwarded-For's addresses, or Forwarded's `for=` values (RFC 7239), left to right."""
    hops = []
    for element in header.split(","):
        pairs = [pair.strip() for pair in element.split(";")]
        if not any("=" in pair for pair in pairs):
            hops.append(element.strip())
            continue
        found = [value for name, _, value in (pair.partition("=") for pair in pairs) if name.strip().lower() == "for"]
        hops.append(found[0].strip().strip('"') if found else "")
    return hops


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address, with or without its port ("192.0.2.1:80", "[2001:db8::1]:80"); None otherwise."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("["):
        text = text[1:text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _among(address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Sequence[Network]) -> bool:
    return any(address in network for network in proxies if network.version == address.version)
