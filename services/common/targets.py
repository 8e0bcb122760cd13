"""Where Genline's outbound fetches may go. Every fetch names its purpose, and each purpose has an
allow-list of its own: no private, loopback, link-local or otherwise special address (SSRF)
unless the operator opens that network for that purpose alone, by its setting.

| purpose | what is fetched | setting (a JSON list of networks) | services |
|---|---|---|---|
| webhook receivers | job, endpoint and evaluation webhooks | `GENLINE_WEBHOOK_ALLOWED_NETWORKS` | ingest, delivery |
| images named by URL | an evaluation's images given by URL | `GENLINE_IMAGE_URL_ALLOWED_NETWORKS` | ingest |
| identity providers | a tenant's OpenID Connect discovery, keys and token endpoint | `GENLINE_OIDC_ALLOWED_NETWORKS` | ingest |
| provider hosts | a provider's outputs on a host other than its configured endpoint | `GENLINE_PROVIDER_ALLOWED_NETWORKS` | router |

A URL is checked where it is named (a tenant's endpoint, a job's `webhook_url`) and again at
each fetch, on the addresses its host resolves to then; the connection goes to the address
checked (`Guard.pinned`), so a name that resolves elsewhere a second time gains nothing, and a
redirect is followed only where the purpose allows one, each hop through the same check.
"""

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urljoin, urlsplit

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
RESOLVE_TIMEOUT_S = 3.0


class RefusedTarget(ValueError):
    """The URL is not one this purpose may fetch; the message says why."""


class ClosedNetwork(RefusedTarget):
    """The URL's host is (or resolves to) an address no network opened for the purpose holds."""


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
        raise ClosedNetwork(f"{address} is a private, loopback, link-local or reserved address")


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
        raise RefusedTarget("a URL cannot carry credentials")
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


class Purpose(StrEnum):
    """What an outbound fetch is for; each has its own allow-list setting (SETTINGS)."""

    WEBHOOK_RECEIVERS = "webhook receivers"
    IMAGE_URLS = "images named by URL"
    IDENTITY_PROVIDERS = "identity providers"
    PROVIDER_HOSTS = "provider hosts"


SETTINGS = {Purpose.WEBHOOK_RECEIVERS: "GENLINE_WEBHOOK_ALLOWED_NETWORKS",
            Purpose.IMAGE_URLS: "GENLINE_IMAGE_URL_ALLOWED_NETWORKS",
            Purpose.IDENTITY_PROVIDERS: "GENLINE_OIDC_ALLOWED_NETWORKS",
            Purpose.PROVIDER_HOSTS: "GENLINE_PROVIDER_ALLOWED_NETWORKS"}
REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class PinnedRequest:
    """A URL with the checked address in place of its host, the Host header, and the TLS
    server name: what to send so the connection goes where the check said."""

    url: str
    headers: dict[str, str]
    extensions: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class Guard:
    """The one check every outbound fetch of `purpose` goes through: public addresses, and the
    networks opened for this purpose (`allowed`); `redirects`: how many a fetch follows, each
    hop checked again."""

    purpose: Purpose
    allowed: tuple[IPNetwork, ...] = ()
    redirects: int = 0

    @classmethod
    def of(cls, purpose: Purpose, networks: list[str], *, redirects: int = 0) -> "Guard":
        return cls(purpose=purpose, allowed=tuple(allowed_networks(networks)), redirects=redirects)

    async def address(self, url: str) -> IPAddress:
        """The address to connect to for `url`; RefusedTarget, naming the purpose and its
        setting, when it may not be fetched."""
        try:
            return await checked_address(url, list(self.allowed))
        except ClosedNetwork as refused:
            raise ClosedNetwork(f"{refused}, which {SETTINGS[self.purpose]} does not open for {self.purpose}") from None

    async def pinned(self, url: str) -> PinnedRequest:
        pinned, host, extensions = pinned_request(url, await self.address(url))
        return PinnedRequest(pinned, host, extensions)

    @asynccontextmanager
    async def stream(self, method: str, url: str, *, http: httpx.AsyncClient, headers: dict[str, str] | None = None,
                     content: bytes | str | None = None, form: dict[str, str] | None = None,
                     auth: tuple[str, str] | None = None) -> AsyncIterator[httpx.Response]:
        """The answer to `method url` (a body as `content` or a `form`), its body unread, each
        redirect (up to `redirects`) checked and pinned like the first hop; the redirect past
        them is not followed: it is the answer."""
        for hop in range(self.redirects + 1):
            target = await self.pinned(url)
            request = http.build_request(method, target.url, headers=(headers or {}) | target.headers, content=content,
                                         data=form, extensions=target.extensions)
            response = await http.send(request, stream=True, follow_redirects=False, auth=auth or httpx.USE_CLIENT_DEFAULT)
            try:
                if hop == self.redirects or response.status_code not in REDIRECTS or "location" not in response.headers:
                    yield response
                    return
                url = urljoin(url, response.headers["location"])
            finally:
                await response.aclose()
