"""Where outbound fetches may go: public addresses, and the networks a deployment opens for each
purpose by its own setting; redirects through the same guard."""

import ipaddress
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from services.common import targets

LOOPBACK = targets.allowed_networks(["127.0.0.0/8", "::1/128"])


@pytest.mark.parametrize("url", ["http://10.0.0.1/h", "http://169.254.169.254/latest", "http://192.168.0.7/h",
                                 "http://[::ffff:10.1.2.3]/h", "http://[fe80::1]/h", "http://0.0.0.0/h",
                                 "http://224.0.0.1/h", "http://100.64.0.1/h"])
async def test_private_link_local_and_special_addresses_are_refused_even_with_loopback_allowed(url):
    with pytest.raises(targets.RefusedTarget):
        await targets.checked_address(url, LOOPBACK)


# The metadata address and private ones in the IPv6 forms that carry an IPv4 address:
# NAT64 (well-known and local-use prefixes), SIIT, IPv4-mapped and -compatible, 6to4 and
# Teredo (whose client address is stored inverted), and the ranges the standard library
# still calls global.
DISGUISED = ["64:ff9b::a9fe:a9fe", "64:ff9b::169.254.169.254", "64:ff9b::a00:1", "64:ff9b:1::a00:1",
             "::ffff:0:a9fe:a9fe", "::ffff:169.254.169.254", "::169.254.169.254", "::127.0.0.1",
             "2002:a9fe:a9fe::1", "2002:a00:1::1", "2002:7f00:1::",
             "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo, client 169.254.169.254 inverted
             "2001:0:a00:1::1",  # Teredo, server 10.0.0.1
             "fec0::1", "fd12:3456::1", "192.0.0.8", "198.18.0.1", "240.0.0.1", "::", "ff02::1"]


@pytest.mark.parametrize("address", DISGUISED)
async def test_private_and_metadata_addresses_in_disguise_are_refused(address):
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(targets.RefusedTarget):
        await targets.checked_address(f"http://{host}/hook", LOOPBACK)


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "2002:808:808::1", "2606:4700:4700::1111"])
async def test_public_addresses_behind_a_translator_pass(address):
    assert await targets.checked_address(f"https://[{address}]/hook", []) == ipaddress.ip_address(address)


async def test_loopback_only_where_allowed():
    with pytest.raises(targets.RefusedTarget):
        await targets.checked_address("http://127.0.0.1:8080/h", [])
    assert await targets.checked_address("http://127.0.0.1:8080/h", LOOPBACK) == ipaddress.ip_address("127.0.0.1")
    assert await targets.checked_address("http://localhost/h", LOOPBACK) in (ipaddress.ip_address("127.0.0.1"),
                                                                             ipaddress.ip_address("::1"))


async def test_public_addresses_pass():
    assert await targets.checked_address("https://93.184.215.14/hook", []) == ipaddress.ip_address("93.184.215.14")


@pytest.mark.parametrize("url", ["ftp://example.com/h", "/relative", "http://user:pw@93.184.215.14/h",
                                 "http://93.184.215.14:99999/h", "http://name.invalid/h"])
async def test_odd_or_unresolvable_urls_are_refused(url):
    with pytest.raises(targets.RefusedTarget):
        await targets.checked_address(url, [])


class Counting(BaseHTTPRequestHandler):
    """A listener that counts what reaches it, and redirects to `location` when it has one."""

    location: str | None = None
    seen: list[str]

    def do_GET(self):
        self.seen.append(self.path)
        if self.location:
            self.send_response(302)
            self.send_header("Location", self.location)
        else:
            self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@contextmanager
def listening(host: str, location: str | None = None):
    handler = type("Handler", (Counting,), {"location": location, "seen": []})
    server = ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{server.server_port}", handler.seen
    finally:
        server.shutdown()
        server.server_close()


async def test_a_redirect_goes_through_the_same_guard_and_one_to_a_closed_network_is_never_reached():
    with listening("127.0.0.2") as (inner, reached), listening("127.0.0.1", location=f"{inner}/secret") as (outer, _):
        guard = targets.Guard.of(targets.Purpose.IMAGE_URLS, ["127.0.0.1/32"], redirects=3)
        with pytest.raises(targets.RefusedTarget, match="GENLINE_IMAGE_URL_ALLOWED_NETWORKS"):
            async with httpx.AsyncClient() as http, guard.stream("GET", f"{outer}/cat.png", http=http):
                pass
        assert reached == []
        opened = targets.Guard.of(targets.Purpose.IMAGE_URLS, ["127.0.0.0/30"], redirects=3)
        async with httpx.AsyncClient() as http, opened.stream("GET", f"{outer}/cat.png", http=http) as answer:
            assert answer.status_code == 200 and reached == ["/secret"]


async def test_a_purpose_reaches_only_what_its_own_setting_opens():
    webhooks = targets.Guard.of(targets.Purpose.WEBHOOK_RECEIVERS, ["127.0.0.0/8"])
    images = targets.Guard.of(targets.Purpose.IMAGE_URLS, [])
    assert await webhooks.address("http://127.0.0.1:9/hook") == ipaddress.ip_address("127.0.0.1")
    for spelling in ("127.0.0.1", "localhost", "2130706433", "0x7f000001", "0177.0.0.1", "[::ffff:127.0.0.1]"):
        with pytest.raises(targets.ClosedNetwork, match="does not open for images named by URL"):
            await images.address(f"http://{spelling}:9/cat.png")
