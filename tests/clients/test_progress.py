"""What a client makes of a job's progress and course, without I/O: a `progress` entry typed,
each entry handed to `wait`'s callbacks once and in order (a stream resumed, then the log
polled, may repeat entries), and a job's states in the order it entered them whatever order
its `timestamps` come in."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from genline_cli.jobs import eta_text, event_line
from genline_client import Job, JobEvent, Progress
from genline_client._calls import Listeners, preview_path

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
PAYLOAD = {"candidates": 240, "generated": 96, "scored": 64, "passing": 21, "images": 60, "needed": 39, "eta_s": 41.5,
           "previews": [{"index": 17, "url": "/v1/jobs/j/candidates/17/image"}]}


def entry(seq: int, type: str = "progress", **payload) -> JobEvent:
    return JobEvent(seq=seq, type=type, time=T0, payload=payload or PAYLOAD)


def test_a_progress_entry_is_typed_and_other_entries_have_none():
    progress = entry(12).progress
    assert isinstance(progress, Progress)
    assert (progress.generated, progress.passing, progress.needed, progress.eta_s) == (96, 21, 39, 41.5)
    assert progress.previews[0].index == 17 and progress.previews[0].url.endswith("/candidates/17/image")
    assert entry(3, "state", state="admitted").progress is None
    unknown = entry(4, candidates=4, generated=0, scored=0, passing=0, images=1, needed=1, eta_s=None)
    assert unknown.progress.eta_s is None and unknown.progress.previews == []


def test_the_callbacks_get_each_entry_once_in_order():
    events, progresses = [], []
    listeners = Listeners(events.append, progresses.append)
    for seq in (1, 2, 3, 2, 3, 4):  # a stream that ended early, then the log read after the last one seen
        listeners.hand_on(entry(seq) if seq % 2 == 0 else entry(seq, "state", state="admitted"))
    assert [e.seq for e in events] == [1, 2, 3, 4] and len(progresses) == 2 and listeners.after == 4
    assert not Listeners().listening and Listeners(on_progress=print).listening


def test_a_jobs_history_is_in_the_order_it_entered_its_states():
    entered = {state: T0 + timedelta(seconds=i) for i, state in
               enumerate(["submitted", "admitted", "generating", "scoring", "delivering", "succeeded"])}
    entered["scoring"] = entered["generating"]  # the attempt's start read with its end: one instant
    as_stored = {s: entered[s] for s in ["scoring", "admitted", "submitted", "succeeded", "delivering", "generating"]}
    job = Job(id=uuid4(), state="succeeded", template="generic", prompt="p", images=1, candidates=4, seed=1,
              created_at=T0, updated_at=T0, timestamps=as_stored)
    assert [state for state, _ in job.history] == list(entered)


def test_a_progress_line_says_the_counts_the_eta_and_what_passed():
    line = event_line(entry(12))
    assert "progress" in line and "96/240 generated · 64 scored · 21/60 passing · 39 needed" in line
    assert line.endswith("ETA 42 s  passed: #17")
    assert [eta_text(s) for s in (None, 0.4, 59.6, 61, 3600)] == \
        ["ETA unknown", "ETA 0 s", "ETA 1:00", "ETA 1:01", "ETA 60:00"]


def test_a_preview_is_read_only_from_the_apis_own_paths():
    assert preview_path(entry(12).progress.previews[0]) == "/v1/jobs/j/candidates/17/image"
    for elsewhere in ("https://elsewhere.example/v1/x", "//elsewhere.example/v1/x", "candidates/1/image"):
        with pytest.raises(ValueError):  # the API key goes nowhere but to the API
            preview_path(elsewhere)
