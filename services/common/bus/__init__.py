"""The bus: how events leave one service and reach another, exactly once in effect.

A service writes its events into its outbox in the transaction of the change; a relay
publishes them to Kafka; a consumer applies each batch in one transaction that also records
the events in the inbox (so a redelivered one is skipped) and writes the events it causes.
The outbox doubles as the service's journal, from which a topic lost with its broker is
rebuilt. Services use it through `services.common.runtime.ServiceRuntime`; only this
package (and the runtime, which makes the broker) speaks Kafka.

    envelope.py       CloudEvents 1.0 envelopes and their Kafka binary binding
    outbox.py         the transactional outbox and the relay that publishes it
    inbox.py          applied-event records, what a handler gets, retryable errors
    consumer.py       subscribers: batches in one transaction, DLQ, offset commits
    journal.py        the outbox as the service's journal; broker loss, rotation, pruning
    kafka_admin.py    what the relay asks the broker: offsets, groups, gaps, recreation
    kafka_security.py the broker's TLS and SASL settings, for every client
    wake.py           consumers fetch when a relay announces a topic (embedded broker)
    replay.py         reading a service's history from its journal or its topic

The tables it keeps (outbox, inbox, journal floor) are created by common's migrations.
"""
