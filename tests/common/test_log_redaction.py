"""Prompts in log lines: shown only when redaction is off (GENLINE_REDACT_PROMPTS=false)."""

import json
import logging

from services.common import telemetry

PROMPT = 'a "secret" product launch, codename Bluebird'


def line(redact: bool, message: str, *args, exc: BaseException | None = None, **extra) -> dict:
    record = logging.LogRecord("test", logging.WARNING, __file__, 1, message, args,
                               (type(exc), exc, exc.__traceback__) if exc else None)
    record.__dict__.update(extra)
    with telemetry.job_context(telemetry.JobContext(job_id="job-1", tenant_id="acme", prompt=PROMPT)):
        return json.loads(telemetry.JsonFormatter("ingest", redact).format(record))


def failing_with_the_prompt() -> BaseException:
    try:
        raise ValueError(f"provider refused {json.dumps({'prompt': PROMPT})}")
    except ValueError as error:
        return error


def test_without_redaction_the_prompt_shows():
    shown = line(False, "accepted job %s", "job-1", prompt=PROMPT)

    assert shown["prompt"] == PROMPT


def test_with_redaction_the_prompt_is_cut_from_the_field_the_message_and_the_exception():
    entry = line(True, "provider said: %s", f"cannot draw {PROMPT}", exc=failing_with_the_prompt(), prompt=PROMPT)

    text = json.dumps(entry)
    assert "Bluebird" not in text
    assert entry["prompt"] == telemetry.REDACTED
    assert entry["msg"] == f"provider said: cannot draw {telemetry.REDACTED}"
    assert "ValueError: provider refused" in entry["exc"]


def test_a_prompt_field_is_redacted_even_for_a_job_not_being_handled():
    record = logging.LogRecord("test", logging.ERROR, __file__, 1, "invalid body %s", ({"prompt": "other words"},),
                               None)

    entry = json.loads(telemetry.JsonFormatter("ingest", True).format(record))

    assert entry["msg"] == f"invalid body {{'prompt': '{telemetry.REDACTED}'}}"
