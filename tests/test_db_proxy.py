"""The tests' database proxy (tests/db_proxy.py) cuts every link, also one that was still
reaching the server when the cut came: a test that cuts the database must not keep a
connection through it by chance."""

import asyncio

from tests.db_proxy import DatabaseProxy


async def test_a_link_still_reaching_the_server_when_the_proxy_is_cut_drops_too(endpoints):
    proxy = DatabaseProxy(endpoints.database_url)
    await proxy.open()
    try:
        # Accepted by the proxy, which then connects to PostgreSQL for it: cut meanwhile.
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        await proxy.cut()
        # PostgreSQL waits for a startup message that never comes: only the cut ends the link.
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
    finally:
        await proxy.cut()
