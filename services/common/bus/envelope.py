"""CloudEvents 1.0 envelopes and their Kafka binary binding.

Attributes travel in `ce_*` headers (`ce_subject` is the job id, the extension `tenantid`
names the tenant and `traceparent` carries the W3C trace context); the body is the event's
JSON payload and the record key is the job id. The extensions `planpriority` and
`jobpriority` carry the job's turn (its tenant's plan's priority, its own priority among the
tenant's jobs), taken from the JobSpec an event carries, else from the event that caused it,
so that a consumer taking events in fair turns (read_ahead.py) knows them without the job.
The extension `producerversion` names the release of the service that wrote the event (none
on events of releases before 0.2.0), so a reader, a dead letter and a replay say which
release each event came from during a rolling update.
"""

import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event

from services.common.contracts import JOB_PRIORITIES, Event, JobEvent, JobSpec, UnknownEventType, parse_event
from services.common.releases import RELEASE
from services.common.tracing import current_traceparent, trace_id_of

CONTENT_TYPE = "application/json"
SPECVERSION = "1.0"


# Headers the relay adds beside the CloudEvents ones (journal.py): when the event's row was
# written to its producer's journal, and that journal's floor.
JOURNALED_AT = "genline_journaled_at"
FLOOR = "genline_floor"


@dataclass(frozen=True, kw_only=True)
class Envelope:
    id: str
    source: str
    time: datetime
    subject: str | None
    tenant_id: str | None
    traceparent: str
    event: Event
    # Where a received event came from, as its producer's journal stamped it (None when it
    # was sent otherwise): what the inbox needs to forget it once it cannot arrive again.
    topic: str | None = field(default=None, compare=False)
    journaled_at: datetime | None = field(default=None, compare=False)
    floor: datetime | None = field(default=None, compare=False)
    # The job's turn (see the module's docstring); the defaults where no event said.
    plan_priority: int = 0
    job_priority: str = JOB_PRIORITIES[0]
    # The release that wrote it: this one for an envelope made here; as its header said (None
    # before releases said) for one received.
    producer_version: str | None = field(default=RELEASE, compare=False)

    @property
    def type(self) -> str:
        return self.event.event_type

    @property
    def key(self) -> bytes | None:
        return self.subject.encode() if self.subject else None


def new_traceparent(trace_id: str | None = None) -> str:
    trace_id = trace_id or secrets.token_hex(16)
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"


def child_traceparent(parent: str) -> str:
    """Same trace, new span: the caused event joins its cause's trace."""
    return new_traceparent(trace_id_of(parent))


def trace_of(cause: Envelope | None) -> str:
    """The current span's context when it belongs to the cause's trace (or there is no cause:
    an API request's span); else the cause's trace; else a new one."""
    current = current_traceparent()
    if current and (cause is None or trace_id_of(current) == trace_id_of(cause.traceparent)):
        return current
    return child_traceparent(cause.traceparent) if cause else new_traceparent()


# The variant nibble of an RFC 9562 UUID (10xx), by the random nibble's two low bits.
VARIANT_NIBBLES = "89ab"


def new_event_id() -> str:
    """A random (version 4) UUID as text, formatted from 16 random bytes directly: every event
    takes one, and `str(uuid4())` spent three quarters of its time in the UUID class."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{VARIANT_NIBBLES[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def envelop(event: Event, source: str, *, cause: Envelope | None = None) -> Envelope:
    subject = str(event.job_id) if isinstance(event, JobEvent) else None
    tenant_id = getattr(event, "tenant_id", None)
    plan_priority, job_priority = turn_of(event, subject, cause=cause)
    return Envelope(id=new_event_id(), source=source, time=datetime.now(UTC), subject=subject, tenant_id=tenant_id, traceparent=trace_of(cause), event=event,
                    plan_priority=plan_priority, job_priority=job_priority)


def turn_of(event: Event, subject: str | None, *, cause: Envelope | None) -> tuple[int, str]:
    """The job's turn: from the JobSpec the event carries, else from its cause about the same job."""
    spec = getattr(event, "job", None)
    if isinstance(spec, JobSpec):
        return spec.priority, spec.job_priority
    if cause is not None and subject is not None and cause.subject == subject:
        return cause.plan_priority, cause.job_priority
    return 0, JOB_PRIORITIES[0]


def ce_headers(envelope: Envelope) -> dict[str, str]:
    """The envelope's attributes as the Kafka binary content mode's headers, written
    directly: every envelope already holds what the spec requires (an id, a source, a type,
    an aware time), so the SDK's per-attribute validation would only cost time on the hot
    path. Reading goes through the SDK, which checks what others send, and a test holds the
    two bindings equal."""
    headers = {
        "ce_id": envelope.id,
        "ce_source": envelope.source,
        "ce_type": envelope.type,
        "ce_specversion": SPECVERSION,
        "ce_time": rfc3339(envelope.time),
        "content-type": CONTENT_TYPE,
        "ce_traceparent": envelope.traceparent,
        "ce_producerversion": RELEASE,
    }
    if envelope.subject:
        headers["ce_subject"] = envelope.subject
    if envelope.tenant_id:
        headers["ce_tenantid"] = envelope.tenant_id
    if envelope.plan_priority:
        headers["ce_planpriority"] = str(envelope.plan_priority)
    if envelope.job_priority != JOB_PRIORITIES[0]:
        headers["ce_jobpriority"] = envelope.job_priority
    return headers


def to_kafka(envelope: Envelope) -> KafkaMessage:
    headers = {name: value.encode() for name, value in ce_headers(envelope).items()}
    # The payload as JSON bytes straight from pydantic.
    return KafkaMessage(headers=headers, key=envelope.key, value=envelope.event.model_dump_json().encode())


def rfc3339(moment: datetime) -> str:
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class MalformedEnvelope(ValueError):
    pass


class UnknownType(MalformedEnvelope):
    """A well-formed event of a type this release does not know (a later release wrote it):
    kept, not dead-lettered (held.py)."""

    def __init__(self, message: str, *, event_id: str, event_type: str, producer_version: str | None) -> None:
        super().__init__(message)
        self.event_id, self.event_type, self.producer_version = event_id, event_type, producer_version


class KafkaRecord(Protocol):
    """A record as a Kafka client reads it (its headers a list of pairs) or as `to_kafka`
    writes it (a mapping)."""

    @property
    def headers(self) -> Mapping[str, bytes] | Sequence[tuple[str, bytes]] | None: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...


def type_and_floor(record: KafkaRecord) -> tuple[str, datetime | None]:
    """A record's event type and its journal's floor, read from its headers alone."""
    headers = dict(record.headers or ())
    return headers.get("ce_type", b"").decode(errors="replace"), _moment(headers.get(FLOOR))


def from_kafka(record: KafkaRecord, topic: str | None = None) -> Envelope:
    try:
        headers = dict(record.headers or ())
        ce = from_binary_event(KafkaMessage(headers=headers, key=record.key, value=record.value or b""))
        attributes = ce.get_attributes()
        data = ce.get_data()
        if not isinstance(data, dict):
            raise TypeError(f"the data is {type(data).__name__}, not a JSON object")
        event = parse_event(attributes["type"], data)
    except UnknownEventType as exc:  # raised by parse_event alone, once the attributes are read
        raise UnknownType(f"cannot decode event: {exc}", event_id=attributes["id"], event_type=attributes["type"],
                          producer_version=_text(attributes.get("producerversion"))) from exc
    except Exception as exc:  # any undecodable record is a poison message, not a crash
        raise MalformedEnvelope(f"cannot decode event: {exc}") from exc
    return Envelope(
        id=attributes["id"],
        source=attributes["source"],
        time=attributes.get("time") or datetime.now(UTC),
        subject=attributes.get("subject"),
        tenant_id=attributes.get("tenantid"),
        traceparent=attributes.get("traceparent") or new_traceparent(),
        event=event,
        topic=topic,
        journaled_at=_moment(headers.get(JOURNALED_AT)),
        floor=_moment(headers.get(FLOOR)),
        plan_priority=_priority(attributes.get("planpriority")),
        job_priority=_job_priority(attributes.get("jobpriority")),
        producer_version=_text(attributes.get("producerversion")),
    )


def _priority(value: object) -> int:
    """A plan's priority as a header says it; anything else reads as the lowest (a turn is
    an ordering hint: a bad one must not make the event undecodable)."""
    try:
        return max(0, int(str(value))) if value is not None else 0
    except ValueError:
        return 0


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _job_priority(value: object) -> str:
    return value if isinstance(value, str) and value in JOB_PRIORITIES else JOB_PRIORITIES[0]


def _moment(value: bytes | None) -> datetime | None:
    """A journal's timestamp header; one that does not read as an aware time counts as
    absent (the event is then never forgotten, which is safe)."""
    try:
        moment = datetime.fromisoformat(value.decode()) if value else None
    except (UnicodeDecodeError, ValueError):
        return None
    return moment if moment is not None and moment.tzinfo is not None else None
