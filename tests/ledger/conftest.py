import asyncio
import uuid

import pytest

from services.common.contracts import all_topics
from services.ledger.settings import LedgerSettings
from services.stack.embedded import create_topics


def isolated_ledger_settings(endpoints, **overrides) -> LedgerSettings:
    """Ledger settings on topics and a schema of their own, so nothing else consumes or
    writes them and a replay sees exactly this ledger's history."""
    suffix = uuid.uuid4().hex[:8]
    namespace, schema = f"t{suffix}", f"ledger_{suffix}"
    asyncio.run(create_topics(endpoints.kafka_bootstrap, all_topics(namespace)))
    return endpoints.settings(LedgerSettings, **({"environment": "test", "topic_namespace": namespace,
                                                   "schema_name": schema} | overrides))


@pytest.fixture
def isolated_settings(endpoints) -> LedgerSettings:
    return isolated_ledger_settings(endpoints)
