"""Where a provider's outputs are fetched from: its own hosts (the endpoint the registry names,
its credential hosts) whatever their address, and any other host (a CDN, a bucket, a redirect's
target) only at a public address or one GENLINE_PROVIDER_ALLOWED_NETWORKS opens for provider
hosts; a provider that names an output anywhere else gets nothing fetched: its bad output."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import httpx
import pytest

from services.common import targets
from services.router.providers.base import ProviderError
from services.router.providers.registry import ProviderConfig
from services.router.providers.transport import ProviderHttp
from tests.router.stubs import entry


@contextmanager
def serving(host: str, location: str | None = None) -> Iterator[tuple[str, list[str]]]:
    """A host that answers a PNG (or redirects to `location`), and the paths asked of it."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            self.send_response(302 if location else 200)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"\x89PNG")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{server.server_port}", seen
    finally:
        server.shutdown()
        server.server_close()


def provider_http(client: httpx.AsyncClient, networks: list[str]) -> ProviderHttp:
    """A provider whose endpoint is on 127.0.0.1 (its own host, any port)."""
    config = ProviderConfig.model_validate({"name": "hosted", **entry(SimpleNamespace(adapter="fal",
                                                                                     url="http://127.0.0.1:9"))})
    return ProviderHttp(config, client, auth_headers={}, outputs=targets.Guard.of(targets.Purpose.PROVIDER_HOSTS,
                                                                                  networks))


async def test_an_output_on_the_providers_own_host_is_fetched_whatever_its_address():
    with serving("127.0.0.1") as (own, seen):
        async with httpx.AsyncClient() as client:
            assert (await provider_http(client, []).download(f"{own}/out.png")).data == b"\x89PNG"
    assert seen == ["/out.png"]


async def test_an_output_on_another_private_host_is_never_fetched_unless_provider_hosts_open_it():
    with serving("127.0.0.2") as (elsewhere, seen):
        async with httpx.AsyncClient() as client:
            with pytest.raises(ProviderError) as refused:
                await provider_http(client, []).download(f"{elsewhere}/out.png")
            assert refused.value.kind == "bad_output" and "GENLINE_PROVIDER_ALLOWED_NETWORKS" in str(refused.value)
            assert seen == []
            opened = await provider_http(client, ["127.0.0.2/32"]).download(f"{elsewhere}/out.png")
    assert opened.data == b"\x89PNG" and seen == ["/out.png"]


async def test_a_redirect_from_the_providers_host_to_a_private_one_is_refused_before_connecting():
    with serving("127.0.0.2") as (private, reached), serving("127.0.0.1", location=f"{private}/secret") as (own, _):
        async with httpx.AsyncClient() as client:
            with pytest.raises(ProviderError, match="is not fetched"):
                await provider_http(client, []).download(f"{own}/out.png")
    assert reached == []


async def test_an_upload_to_a_url_the_provider_names_on_another_private_host_is_never_sent():
    """fal's storage names the URL a subject's photo is PUT to: it is reached as an output is."""
    with serving("127.0.0.2") as (elsewhere, seen):
        async with httpx.AsyncClient() as client:
            with pytest.raises(ProviderError) as refused:
                await provider_http(client, []).upload(f"{elsewhere}/upload", data=b"photo", media_type="image/jpeg")
    assert refused.value.kind == "bad_output" and seen == []
