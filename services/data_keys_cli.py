"""`genline data-keys …`: the key-encryption keys of the jobs' data keys
(services/ingest/key_encryption.py).

    genline data-keys new-kek FILE    add a new KEK to a key file (made when missing), active from now
    genline data-keys rewrap          wrap every stored key under the active KEK, online
    genline data-keys status          how many keys are wrapped under each KEK

`rewrap` and `status` read ingest's settings from the environment (GENLINE_DATABASE_URL
with ingest's role, GENLINE_DATA_KEY_KEK_FILE and/or GENLINE_DATA_KEY_KMS_KEY_ID)."""

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from services.ingest.key_encryption import new_key_file


def schema_of(settings) -> str:
    return settings.schema_name or "ingest"


async def rewrap_all(settings, out=print) -> int:
    from services.ingest.data_keys import rewrap
    from services.ingest.key_encryption import keyring_of

    keyring, total = keyring_of(settings), 0
    async with await psycopg.AsyncConnection.connect(settings.database_url.get_secret_value(), autocommit=True,
                                                     row_factory=dict_row) as conn:
        await conn.execute(f'SET search_path TO "{schema_of(settings)}"')
        while done := await rewrap(conn, keyring):
            total += done
    out(f"{total} data keys wrapped again under {keyring.active}")
    return total


async def status(settings, out=print) -> dict:
    async with await psycopg.AsyncConnection.connect(settings.database_url.get_secret_value(), autocommit=True) as conn:
        rows = await (await conn.execute(
            f'SELECT coalesce(kek_id, \'(clear)\'), count(*) FROM "{schema_of(settings)}".data_keys'
            " GROUP BY 1 ORDER BY 1")).fetchall()
    for kek_id, count in rows:
        out(f"{kek_id}\t{count}")
    return dict(rows)


def main(argv: Sequence[str] | None = None, prog: str = "genline data-keys") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new-kek", help="add a new KEK to FILE and make it the active one")
    new.add_argument("file", type=Path)
    commands.add_parser("rewrap", help="wrap every stored key under the active KEK")
    commands.add_parser("status", help="how many keys each KEK wraps")
    args = parser.parse_args(argv)
    if args.command == "new-kek":
        print(f"KEK {new_key_file(args.file)} added to {args.file} and made active; restart ingest, then run"
              f" `{prog} rewrap`")
        return 0
    from services.ingest.settings import IngestSettings

    settings = IngestSettings()
    if args.command == "rewrap":
        asyncio.run(rewrap_all(settings))
    else:
        asyncio.run(status(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
