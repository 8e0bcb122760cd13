"""The bus: how events leave one service and reach another, exactly once in effect.

A service writes its events into its outbox in the transaction of the change; a relay
publishes them to Kafka; a consumer applies each batch in one transaction that also records
the events in the inbox (so a redelivered one is skipped) and writes the events it causes.
The outbox doubles as the service's journal, from which a topic lost with its broker is
rebuilt. Services, the embedded stack, the CLI and the benchmarks use it through
`services.common.runtime.ServiceRuntime` and the names this module exports (`__all__`), and
import nothing else of it (pyproject.toml's import contract `bus-front-door`; the CLI takes
the bus's commands from `cli.py`); only this package (and the runtime, which makes the
broker) speaks Kafka. It hands out no SQL (tests/test_shape.py): a statement that carries the
inbox's claim or an outbox row is handed to it (`InboxClaim.first`, `staged_event`).

    envelope.py       CloudEvents 1.0 envelopes and their Kafka binary binding
    outbox.py         the transactional outbox and the relay that publishes it
    inbox.py          applied-event records, what a handler gets, retryable errors
    consumption.py    what a service consumes, declared once; a consumer without a branch
                      does not start
    consumer.py       subscribers: batches in one transaction, DLQ, offset commits
    inbox_floors.py   the journals' floors a consumer saw, and the inbox pruned below them
    journal.py        the outbox as the service's journal; broker loss, rotation, pruning
    kafka_admin.py    what the relay asks the broker: offsets, groups, gaps, recreation
    kafka_security.py the broker's TLS and SASL settings, for every client
    wake.py           consumers fetch when a relay announces a topic (embedded broker)
    replay.py         reading a service's history from its journal or its topic
    writing.py        events written as the oldest release still reading them reads them

The tables it keeps (outbox, inbox, journal floor) are created by common's migrations.

Its modules besides those named above:
    held.py            events of a type this release does not know, kept until a release that
                       knows it applies them
    journal_tables.py  the journal's own tables, and the statements that read and write them
    positions.py       where a consumer stands on its partitions
    read_ahead.py      a consumer's fair turns across tenants (opt-in, `consumer_fair_turns`)
    rebuild.py         the bus as the services' journals see it, and topics rebuilt from them
                       (`genline bus`)
"""

from importlib import import_module
from typing import TYPE_CHECKING

# Each name is loaded from its module when first asked for (PEP 562, as pydantic's own
# package does), so that declaring the `genline` commands, which imports `bus.cli`, loads no
# Kafka client (tests/test_cli.py). The imports below are what type checkers read.
if TYPE_CHECKING:
    from services.common.bus.consumer import EventConsumer as EventConsumer
    from services.common.bus.consumption import Consumption as Consumption
    from services.common.bus.consumption import Unbranched as Unbranched
    from services.common.bus.envelope import Envelope as Envelope
    from services.common.bus.envelope import envelop as envelop
    from services.common.bus.inbox import (
        HandlerContext as HandlerContext,
    )
    from services.common.bus.inbox import (
        InboxClaim as InboxClaim,
    )
    from services.common.bus.inbox import (
        PermanentError as PermanentError,
    )
    from services.common.bus.inbox import (
        Publish as Publish,
    )
    from services.common.bus.inbox import (
        ServiceAway as ServiceAway,
    )
    from services.common.bus.inbox import (
        TransientConflict as TransientConflict,
    )
    from services.common.bus.inbox import (
        retry_races as retry_races,
    )
    from services.common.bus.journal import BUS_FENCE as BUS_FENCE
    from services.common.bus.kafka_admin import committed_offsets as committed_offsets
    from services.common.bus.kafka_admin import high_watermarks as high_watermarks
    from services.common.bus.kafka_admin import partitions_of as partitions_of
    from services.common.bus.kafka_security import client_options as client_options
    from services.common.bus.kafka_security import tls_context as tls_context
    from services.common.bus.outbox import OutboxRelay as OutboxRelay
    from services.common.bus.outbox import OutboxRow as OutboxRow
    from services.common.bus.outbox import add_to_outbox as add_to_outbox
    from services.common.bus.outbox import erase_prompt_from_outbox as erase_prompt_from_outbox
    from services.common.bus.outbox import staged_event as staged_event
    from services.common.bus.replay import (
        Differences as Differences,
    )
    from services.common.bus.replay import (
        HistoryRecord as HistoryRecord,
    )
    from services.common.bus.replay import (
        decoded_envelopes as decoded_envelopes,
    )
    from services.common.bus.replay import (
        journal_horizon as journal_horizon,
    )
    from services.common.bus.replay import (
        journal_schema as journal_schema,
    )
    from services.common.bus.replay import (
        kafka_options as kafka_options,
    )
    from services.common.bus.replay import (
        read_history as read_history,
    )
    from services.common.bus.replay import (
        read_journal as read_journal,
    )
    from services.common.bus.replay import (
        read_topic_to_end as read_topic_to_end,
    )
    from services.common.bus.replay import (
        report as report,
    )
    from services.common.bus.replay import (
        topic_sizes as topic_sizes,
    )
    from services.common.bus.replay import (
        until_settled as until_settled,
    )
    from services.common.bus.writing import EventWriter as EventWriter
    from services.common.bus.writing import UnwritableEvent as UnwritableEvent

MODULE_OF = {
    "EventConsumer": "consumer", "Consumption": "consumption", "Unbranched": "consumption",
    "Envelope": "envelope", "envelop": "envelope",
    "HandlerContext": "inbox", "InboxClaim": "inbox", "PermanentError": "inbox", "Publish": "inbox",
    "ServiceAway": "inbox", "TransientConflict": "inbox", "retry_races": "inbox",
    "BUS_FENCE": "journal",
    "committed_offsets": "kafka_admin", "high_watermarks": "kafka_admin", "partitions_of": "kafka_admin",
    "client_options": "kafka_security", "tls_context": "kafka_security",
    "OutboxRelay": "outbox", "OutboxRow": "outbox", "add_to_outbox": "outbox", "erase_prompt_from_outbox": "outbox", "staged_event": "outbox",
    "Differences": "replay", "HistoryRecord": "replay", "decoded_envelopes": "replay", "journal_horizon": "replay", "kafka_options": "replay", "journal_schema": "replay", "read_history": "replay",
    "read_journal": "replay", "read_topic_to_end": "replay", "report": "replay", "topic_sizes": "replay",
    "until_settled": "replay",
    "EventWriter": "writing", "UnwritableEvent": "writing",
}
__all__ = sorted(MODULE_OF)


def __getattr__(name: str) -> object:
    if name not in MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{MODULE_OF[name]}"), name)
