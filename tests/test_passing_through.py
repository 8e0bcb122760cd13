"""The embedded stack's pass-through (genline_stack/tls_proxy.py): the TLS proxy in front of the
broker and the services' stable addresses (front.py) hand each connection's bytes to another
port. Bytes pass both ways whole and in order, a client's first bytes included; a side that
cannot take more stops the proxy reading the other (the proxy keeps no backlog of its own);
either side closing closes the other; a connection with nowhere to go is closed."""

import asyncio
import ssl
import subprocess
import sys

from genline_stack.ports import free_port
from genline_stack.tls_proxy import Accepted, make_certificates, passing_to
from tests.polling import eventually

CHUNK = 1 << 16
PAYLOAD = bytes(range(256)) * (3 * (1 << 20) // 256)  # 3 MiB, every byte value, so a lost or moved chunk shows


class Echo:
    """A server behind the proxy: sends back what it reads, once it is let read; `leave()`
    closes its connection from its side."""

    def __init__(self) -> None:
        self.reading = asyncio.Event()
        self.reading.set()
        self.closed = asyncio.Event()
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    def leave(self) -> None:
        for writer in self.writers:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            while True:
                await self.reading.wait()
                data = await reader.read(CHUNK)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()
            self.closed.set()


async def sent_back(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes) -> bytes:
    writer.write(payload)
    return await asyncio.wait_for(reader.readexactly(len(payload)), 120)


async def test_bytes_pass_both_ways_through_the_tls_proxy_in_its_own_process(tmp_path):
    """The proxy as the stack runs it (its own process, on uvloop, TLS on its port): a client's
    first bytes, sent at once, and megabytes each way come back whole and in order; a client
    that leaves closes the connection behind the proxy."""
    ca, cert, key = make_certificates(tmp_path)
    echo = Echo()
    target, port = await echo.start(), free_port()
    proxy = subprocess.Popen([sys.executable, "-m", "genline_stack.tls_proxy", str(port), str(target), str(cert), str(key)])
    try:
        context = ssl.create_default_context(cafile=str(ca))

        async def connected() -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
            try:
                return await asyncio.open_connection("127.0.0.1", port, ssl=context)
            except OSError:
                return None

        reader, writer = await eventually(connected, what="the proxy never listened")
        assert await sent_back(reader, writer, b"first") == b"first"
        assert await sent_back(reader, writer, PAYLOAD) == PAYLOAD
        writer.close()
        await asyncio.wait_for(echo.closed.wait(), 60)
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
        echo.server.close()


async def passing(target) -> tuple[asyncio.Server, int, list[Accepted]]:
    """A pass-through server in this process, and the ends it accepted, to look at."""
    accepted: list[Accepted] = []
    factory = passing_to(target)

    def made() -> asyncio.Protocol:
        end = factory()
        accepted.append(end)
        return end

    server = await asyncio.get_running_loop().create_server(made, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], accepted


async def test_a_side_that_takes_no_more_stops_the_proxy_reading_the_other():
    """Behind the proxy, a server that does not read: the proxy stops reading the client once
    what it passed on is not taken (without that it would read on and hold the client's bytes
    itself, without bound); let read, everything arrives, in order."""
    echo = Echo()
    echo.reading.clear()
    target = await echo.start()
    server, port, accepted = await passing(lambda: target)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    payload = PAYLOAD * 8  # more than the sockets' buffers and the transports' marks together
    writer.write(payload)
    await eventually(lambda: accepted and accepted[0].other is not None and not accepted[0].transport.is_reading(),
                     timeout_s=30, what="the proxy read on while the other side took nothing")
    assert writer.transport.get_write_buffer_size() > 0  # the client's bytes wait with the client
    echo.reading.set()
    assert await asyncio.wait_for(reader.readexactly(len(payload)), 120) == payload
    writer.close()
    server.close()
    echo.server.close()


async def test_either_side_leaving_closes_the_other():
    echo = Echo()
    target = await echo.start()
    server, port, _ = await passing(lambda: target)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await sent_back(reader, writer, b"hello") == b"hello"
    echo.leave()
    assert await asyncio.wait_for(reader.read(), 60) == b""  # the client sees its end
    writer.close()
    server.close()
    echo.server.close()


async def test_a_connection_with_nowhere_to_go_is_closed():
    """No port to pass to (a service with no process in service), and a port nobody listens
    on: the client's connection is closed, not left open."""
    nobody = free_port()
    for target in (lambda: None, lambda: nobody):
        server, port, _ = await passing(target)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"anyone?")
        try:
            assert await asyncio.wait_for(reader.read(), 60) == b""
        except ConnectionResetError:  # closed with the client's bytes unread: a reset, as closed
            pass
        writer.close()
        server.close()
