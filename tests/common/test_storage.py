"""Presigned links on the session's S3: they open the object they name, until they expire,
and nothing else (the embedded SeaweedFS checks signatures and expiry as S3 does)."""

import asyncio
import logging
import time
import uuid
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
import httpx
import pytest

from services.common import storage, telemetry

IMAGE = b"\x89PNG\r\n\x1a\n delivered image"


@pytest.fixture(scope="module")
def stored(object_store) -> tuple[str, str]:
    """Two delivered objects in the public bucket."""
    keys = [f"t-links/2026/11/{uuid.uuid4()}/{n}.png" for n in (1, 2)]
    for n, key in enumerate(keys):
        asyncio.run(object_store.put(object_store.public_bucket, key, content=storage.Blob(IMAGE + bytes([n]), "image/png")))
    return keys[0], keys[1]


def with_query(link: str, **changes: str) -> str:
    parts = urlsplit(link)
    query = dict(parse_qsl(parts.query)) | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def refused(link: str) -> httpx.Response:
    response = httpx.get(link, timeout=10)
    assert response.status_code == 403, (response.status_code, response.text[:300])
    assert IMAGE not in response.content
    return response


def test_a_link_opens_its_object(object_store, stored):
    link = object_store.presign_get(object_store.public_bucket, stored[0], ttl_s=300)
    response = httpx.get(link, timeout=10)
    assert response.status_code == 200 and response.content == IMAGE + b"\x00"


def test_a_link_past_its_expiry_is_refused(object_store, stored):
    link = object_store.presign_get(object_store.public_bucket, stored[0], ttl_s=1)
    expires = int(dict(parse_qsl(urlsplit(link).query))["X-Amz-Expires"])
    assert expires == 1
    time.sleep(expires + 1.5)
    assert b"expired" in refused(link).content.lower()


def test_a_link_with_a_changed_signature_is_refused(object_store, stored):
    link = object_store.presign_get(object_store.public_bucket, stored[0], ttl_s=300)
    signature = dict(parse_qsl(urlsplit(link).query))["X-Amz-Signature"]
    changed = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    assert b"SignatureDoesNotMatch" in refused(with_query(link, **{"X-Amz-Signature": changed})).content


def test_a_link_cannot_be_stretched_or_moved_to_another_object(object_store, stored):
    link = object_store.presign_get(object_store.public_bucket, stored[0], ttl_s=300)
    refused(with_query(link, **{"X-Amz-Expires": "604800"}))
    refused(link.replace(stored[0], stored[1]))


def test_an_unsigned_url_is_refused(object_store, stored):
    link = object_store.presign_get(object_store.public_bucket, stored[0], ttl_s=300)
    refused(urlunsplit(urlsplit(link)._replace(query="")))


@pytest.fixture
def service_logging():
    """The root logger and the levels configure_logging changes, as they were after the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quieted = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    yield
    root.handlers[:], root.level = handlers, level
    for name, was in quieted.items():
        logging.getLogger(name).setLevel(was)


def test_a_service_at_info_does_not_log_each_object_store_call(object_store, service_logging, capsys):
    telemetry.configure_logging("router", "INFO")
    key = f"t-logs/{uuid.uuid4()}.png"

    asyncio.run(object_store.put(object_store.internal_bucket, key, content=storage.Blob(IMAGE, "image/png")))
    assert asyncio.run(object_store.get(object_store.internal_bucket, key)) == IMAGE
    logging.getLogger("services.router").info("candidates stored")

    lines = capsys.readouterr().err.splitlines()
    assert [line for line in lines if "candidates stored" in line], lines
    assert not [line for line in lines if key in line or "HTTP Request" in line], lines


def test_a_part_of_an_object_is_read_with_one_ranged_request(object_store):
    """An attempt's candidates lie one after another in one object; each is read alone by
    its offset and size, and a range the object does not hold is an error, not a short read."""
    parts = [b"first candidate", b"\x89PNG second", b"third, the last"]
    key = f"t-parts/{uuid.uuid4()}{storage.ATTEMPT_SUFFIX}"
    asyncio.run(object_store.put(object_store.internal_bucket, key, content=storage.Blob(b"".join(parts), storage.ATTEMPT_MEDIA_TYPE)))
    offsets = [0, len(parts[0]), len(parts[0]) + len(parts[1])]
    before = telemetry.S3_REQUESTS.labels("GetObject", "work")._value.get()

    read = [asyncio.run(object_store.get_part(object_store.internal_bucket, storage.Slice(key, offset, len(part))))
            for offset, part in zip(offsets, parts, strict=True)]

    assert read == parts
    assert telemetry.S3_REQUESTS.labels("GetObject", "work")._value.get() - before == 3
    assert asyncio.run(object_store.get_part(object_store.internal_bucket, storage.Slice(key, None, 0))) == b"".join(parts)
    with pytest.raises(storage.StorageError):
        asyncio.run(object_store.get_part(object_store.internal_bucket, storage.Slice(key, offsets[2], len(parts[2]) + 1)))
    assert storage.candidate_part(b"".join(parts), offsets[1], size_bytes=len(parts[1])) == parts[1]
    with pytest.raises(storage.StorageError):
        storage.candidate_part(b"short", 2, size_bytes=10)


def a_store_at(endpoint: str) -> storage.ObjectStore:
    from services.common.settings import ServiceSettings

    return storage.ObjectStore(ServiceSettings(environment="test", database_url="postgresql://unused",
                                               s3_endpoint_url=endpoint, s3_access_key_id="AKIATEST",
                                               s3_secret_access_key="test-secret"))


async def test_a_connection_closed_before_it_answered_is_tried_again_and_a_refused_one_is_an_error():
    """An S3 server (or a proxy before it) that drops connections without answering, as one
    closing idle keep-alive connections does, costs new connections, not the call (two dropped
    here: more than the HTTP client retries by itself); a server that takes no connection at
    all is an error once the tries are spent."""
    connections: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await reader.readuntil(b"\r\n\r\n")
        if len(connections) > 2:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = a_store_at(f"http://127.0.0.1:{port}")
    try:
        assert await store.get("bucket", "key") == b"hello"
        assert len(connections) == 3
    finally:
        await store.aclose()
        server.close()
        await server.wait_closed()

    gone = a_store_at(f"http://127.0.0.1:{port}")  # nothing listens there any more
    with pytest.raises(aiohttp.ClientConnectorError):
        await gone.get("bucket", "key")
    await gone.aclose()


def test_the_proxy_is_the_environment_s_as_httpx_read_it(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert storage.proxy_for("https://s3.eu-west-1.amazonaws.com") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://plain.internal:3128")
    assert storage.proxy_for("https://s3.eu-west-1.amazonaws.com") == "http://proxy.internal:3128"
    assert storage.proxy_for("http://minio.internal:9000") == "http://plain.internal:3128"
    monkeypatch.setenv("NO_PROXY", "minio.internal,.amazonaws.com")
    assert storage.proxy_for("http://minio.internal:9000") is None
    assert storage.proxy_for("https://s3.eu-west-1.amazonaws.com") is None
