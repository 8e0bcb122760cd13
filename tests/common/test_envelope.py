"""The Kafka binding written by hand equals the CloudEvents SDK's, and reads back through it."""

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cloudevents.core.bindings.kafka import to_binary_event
from cloudevents.core.v1.event import CloudEvent

from services.common.bus.envelope import CONTENT_TYPE, Envelope, envelop, from_kafka, new_event_id, to_kafka
from services.common.bus.outbox import outbox_row
from services.common.bus.writing import EventWriter
from services.common.contracts import CreditsGranted, JobCanceled
from services.common.releases import RELEASE


def sdk_binding(envelope: Envelope):
    attributes = {"id": envelope.id, "type": envelope.type, "source": envelope.source, "time": envelope.time,
                  "datacontenttype": CONTENT_TYPE, "traceparent": envelope.traceparent, "producerversion": RELEASE}
    if envelope.subject:
        attributes["subject"] = envelope.subject
    if envelope.tenant_id:
        attributes["tenantid"] = envelope.tenant_id
    return to_binary_event(CloudEvent(attributes, envelope.event.model_dump_json().encode()))


JOB_EVENT = JobCanceled(job_id=uuid.uuid4(), tenant_id="t-ü", final_state="canceled", reason="client asked")
ACCOUNT_EVENT = CreditsGranted(tenant_id="acme", amount=5, reason="r", available_after=5, grant_id=uuid.uuid4(),
                               source="admin")


@pytest.mark.parametrize("event", [JOB_EVENT, ACCOUNT_EVENT])
@pytest.mark.parametrize("moment", [datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
                                    datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                                    datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))])
def test_the_binding_equals_the_sdks_and_reads_back(event, moment):
    envelope = envelop(event, "/genline/test")
    envelope = Envelope(id=envelope.id, source=envelope.source, time=moment, subject=envelope.subject, tenant_id=envelope.tenant_id,
                        traceparent=envelope.traceparent, event=envelope.event)
    ours, sdk = to_kafka(envelope), sdk_binding(envelope)
    assert ours.headers == sdk.headers
    assert (ours.value, ours.key) == (sdk.value, envelope.key)
    assert from_kafka(ours) == envelope


@pytest.mark.parametrize("event", [JOB_EVENT, ACCOUNT_EVENT])
def test_an_outbox_row_holds_the_record_the_sdk_would_write(event):
    envelope = envelop(event, "/genline/test")
    _, event_type, topic, key, headers, body = outbox_row(envelope, EventWriter(namespace="genline")).values
    sdk = sdk_binding(envelope)
    assert {name: value.encode() for name, value in json.loads(headers).items()} == sdk.headers
    assert (key, body, event_type, topic) == (envelope.key, sdk.value, envelope.type, event.topic("genline"))


def test_event_ids_are_random_uuids_as_uuid_writes_them():
    ids = [new_event_id() for _ in range(2000)]
    parsed = [uuid.UUID(i) for i in ids]
    assert ids == [str(u) for u in parsed]  # the canonical text: lower case, dashed
    assert {(u.version, u.variant) for u in parsed} == {(4, uuid.RFC_4122)}
    assert len(set(ids)) == len(ids)
    # Every random bit varies: the version digit is fixed, the variant digit takes its four
    # values, and every other digit all sixteen.
    digits = [{i.replace("-", "")[n] for i in ids} for n in range(32)]
    assert digits[12] == {"4"} and digits[16] == set("89ab")
    assert all(len(seen) == 16 for n, seen in enumerate(digits) if n not in (12, 16))
