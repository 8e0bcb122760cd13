"""A TCP proxy in front of the tests' PostgreSQL that can be cut and restored: the database
goes away for the clients connected through it (their connections drop, new ones are
refused) while every other client, and the server itself, carry on."""

import asyncio
import contextlib
from urllib.parse import parse_qs, urlsplit

from genline_stack.ports import free_port


class DatabaseProxy:
    def __init__(self, database_url: str) -> None:
        parts = urlsplit(database_url)
        socket_dir = parse_qs(parts.query).get("host", [""])[0]
        # pgserver listens on a Unix socket only; a container's PostgreSQL on TCP.
        self._socket = f"{socket_dir}/.s.PGSQL.{parts.port or 5432}" if socket_dir.startswith("/") else None
        self._target = (parts.hostname, parts.port or 5432)
        self.port = free_port()
        user = f"{parts.username}{':' + parts.password if parts.password else ''}@" if parts.username else ""
        self.url = f"postgresql://{user}127.0.0.1:{self.port}{parts.path}"
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._cuts = 0  # how many times it was cut: a link accepted before a cut never joins after it

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """The database is gone for this proxy's clients: listening stops, connections drop."""
        self._cuts += 1
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def _link(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        cuts = self._cuts
        if self._socket:
            server_reader, server_writer = await asyncio.open_unix_connection(self._socket)
        else:
            server_reader, server_writer = await asyncio.open_connection(*self._target)
        if self._cuts != cuts:  # cut while this link reached the server: it drops with the others
            client_writer.transport.abort()
            server_writer.transport.abort()
            return
        self._links |= {client_writer, server_writer}
        await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()
