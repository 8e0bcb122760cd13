"""Reading rows as dicts (the services' pools hand out dict rows) in one call."""

from typing import Any

from psycopg.rows import DictRow

from services.common.db import Conn


async def rows_of(conn: Conn, sql: str, *, params: Any) -> list[DictRow]:
    return await (await conn.execute(sql, params)).fetchall()


async def row_of(conn: Conn, sql: str, *, params: Any) -> DictRow | None:
    return await (await conn.execute(sql, params)).fetchone()
