"""Loaded by every Python process started with this folder on its path (`site` imports
`sitecustomize`): where GENLINE_TEST_STATEMENTS_DIR is set, each distinct statement the
process sends PostgreSQL through psycopg (as sent: `$n` placeholders and their types' OIDs)
is appended to `<service>-<pid>.jsonl` there. The migration check runs a past release's
services so (tests/releases/statements.py), without changing a line of that release."""

import json
import os

folder = os.environ.get("GENLINE_TEST_STATEMENTS_DIR")
if folder:
    from psycopg import _queries

    path = os.path.join(folder, f"{os.environ.get('GENLINE_SERVICE_NAME', 'tool')}-{os.getpid()}.jsonl")
    seen: set[tuple[bytes, tuple[int, ...]]] = set()
    convert = _queries.PostgresQuery.convert

    def recorded(self, query, vars):  # type: ignore[no-untyped-def]
        convert(self, query, vars)
        sent = (bytes(self.query), tuple(self.types or ()))
        if sent not in seen:
            seen.add(sent)
            with open(path, "a") as log:
                log.write(json.dumps({"query": sent[0].decode(errors="replace"), "types": list(sent[1])}) + "\n")

    _queries.PostgresQuery.convert = recorded
