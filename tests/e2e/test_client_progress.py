"""Progress a person can watch, through the Python client and `genline jobs submit --wait`,
against the five services as processes: `progress` entries appended to a held job's log
(through ingest's own store, as ingest writes them) reach `wait`'s callbacks as they are
written, typed, over the stream and, on a platform without streams, by polling the log;
the CLI draws them as a bar on a terminal, a line each elsewhere, a JSON line each with
--json; and its closing summary lists the job's states in the order the job entered them."""

import asyncio
import io
import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import httpx
from PIL import Image
from rich.console import Console

from genline_cli.jobs import follow
from genline_cli.session import CommandOutput
from genline_client import AsyncGenline, Genline, JobEvent, Progress
from tests.e2e.progress_entries import append_progress, progress
from tests.polling import until

ROOT = Path(__file__).resolve().parents[2]
JOB_TIMEOUT_S = 240
COURSE = ["submitted", "admitted", "generating", "scoring", "delivering", "succeeded"]


class Heard:
    """What a `wait`'s callbacks were handed, from the thread that waits."""

    def __init__(self) -> None:
        self.events: list[JobEvent] = []
        self.progress: list[Progress] = []

    def count(self) -> int:
        return len(self.progress)


def held_job(tenant, platform) -> str:
    """A job kept in `admitted` (the router is paused by the caller): its id."""
    job_id = tenant.submit(images=2, candidates=4, seed=5)
    until(lambda: tenant.job(job_id)["state"] == "admitted", 120, f"job {job_id} admitted")
    return job_id


def assert_course(events: list[JobEvent]) -> None:
    assert [e.seq for e in events] == list(range(1, len(events) + 1))  # every entry once, in order
    states = [e.new_state for e in events if e.new_state]
    assert states == COURSE, states


def test_wait_hands_each_progress_entry_to_its_callbacks_as_it_is_written(tenant_factory, platform):
    tenant = tenant_factory()
    heard = Heard()
    first = progress("unused", candidates=4, generated=2, scored=0, passing=0, images=2, eta_s=None)  # no previews
    with Genline(tenant.api_key, platform.ingest_url) as client, ThreadPoolExecutor(1) as waiting:
        with platform.paused("router"):
            job_id = held_job(tenant, platform)
            finished = waiting.submit(client.jobs.wait, job_id, timeout=JOB_TIMEOUT_S, on_event=heard.events.append,
                                      on_progress=heard.progress.append)
            append_progress(platform, job_id, first)
            until(lambda: heard.count() == 1, 60, "the first progress entry, while the job is held")
            second = progress(job_id, candidates=4, generated=4, scored=3, passing=1, images=2, eta_s=12.5,
                              previews=(2,))
            append_progress(platform, job_id, second)
            until(lambda: heard.count() == 2, 60, "the second progress entry, while the job is held")
            assert not finished.done()  # both came before the job could end: live, not read at the end
        job = finished.result(timeout=JOB_TIMEOUT_S)

        assert job.state == "succeeded"
        assert [p.model_dump(mode="json") for p in heard.progress] == [first, second]
        latest = heard.progress[-1]
        assert (latest.generated, latest.scored, latest.passing, latest.needed, latest.eta_s) == (4, 3, 1, 1, 12.5)
        assert latest.previews[0].index == 2 and latest.previews[0].url == f"/v1/jobs/{job_id}/candidates/2/image"
        assert [e.progress for e in heard.events if e.type == "progress"] == heard.progress
        assert_course(heard.events)
        assert [state for state, _ in job.history] == COURSE

        image = client.jobs.preview(latest.previews[0])  # the preview link, read with the caller's key
        assert Image.open(io.BytesIO(image)).size[0] > 0


class WithoutStreams(httpx.AsyncHTTPTransport):
    """The real platform, but as one without event streams: a stream's route is not found."""

    def __init__(self) -> None:
        super().__init__()
        self.polled = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/stream"):
            problem = {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "Not Found"}
            return httpx.Response(404, json=problem, headers={"Content-Type": "application/problem+json"})
        self.polled += request.url.path.endswith("/events")
        return await super().handle_async_request(request)


def test_the_async_client_awaits_its_callbacks_over_the_stream_and_polls_the_log_without_one(tenant_factory,
                                                                                              platform):
    tenant = tenant_factory()

    async def follow_both(streamed_id: str, polled_id: str, without: WithoutStreams) -> tuple:
        streamed, polled = Heard(), Heard()

        async def slowly(progress: Progress) -> None:  # a coroutine callback, awaited before the next entry
            await asyncio.sleep(0)
            streamed.progress.append(progress)

        async with AsyncGenline(tenant.api_key, platform.ingest_url) as client, \
                AsyncGenline(tenant.api_key, platform.ingest_url, transport=without) as no_streams:
            jobs = await asyncio.gather(
                client.jobs.wait(streamed_id, timeout=JOB_TIMEOUT_S, on_event=streamed.events.append,
                                 on_progress=slowly),
                no_streams.jobs.wait(polled_id, timeout=JOB_TIMEOUT_S, poll_interval=0.1,
                                     on_event=polled.events.append, on_progress=polled.progress.append),
            )
            return jobs, streamed, polled, await client.jobs.preview(streamed.progress[0].previews[1])

    without = WithoutStreams()
    with ThreadPoolExecutor(1) as waiting:
        with platform.paused("router"):
            streamed_id, polled_id = held_job(tenant, platform), held_job(tenant, platform)
            finished = waiting.submit(asyncio.run, follow_both(streamed_id, polled_id, without))
            entries = {job_id: progress(job_id, candidates=4, generated=4, scored=4, passing=2, images=2, eta_s=0.8,
                                        previews=(0, 3)) for job_id in (streamed_id, polled_id)}
            for job_id, entry in entries.items():
                append_progress(platform, job_id, entry)
            until(lambda: without.polled >= 2, 60, "the log polled")
        (streamed_job, polled_job), streamed, polled, preview = finished.result(timeout=JOB_TIMEOUT_S)

    assert streamed_job.state == polled_job.state == "succeeded"
    assert [p.model_dump(mode="json") for p in streamed.progress] == [entries[streamed_id]]
    assert [p.model_dump(mode="json") for p in polled.progress] == [entries[polled_id]]
    assert_course(streamed.events)
    assert_course(polled.events)
    assert Image.open(io.BytesIO(preview)).size[0] > 0  # candidate 3's image, read with the caller's key


class Lines:
    """A process's output, line by line as it is written, read on a thread of its own."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(iter(stream.readline, "")), daemon=True)
        self.reader.start()

    def having(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))


def submit_and_wait(tenant, platform, *flags: str) -> tuple[subprocess.Popen, Lines, Lines]:
    env = os.environ | {"GENLINE_API_URL": platform.ingest_url, "GENLINE_API_KEY": tenant.api_key,
                        "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    process = subprocess.Popen([sys.executable, "-m", "genline_cli", "jobs", "submit", "a lighthouse at dusk",
                                "--images", "2", "--candidates", "4", "--seed", "5", "--wait", *flags],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process, Lines(process.stdout), Lines(process.stderr)


def only_job(tenant) -> str:
    jobs = tenant.http.get("/v1/jobs").json()["data"]
    return jobs[0]["id"] if jobs and jobs[0]["state"] == "admitted" else ""


def test_submit_wait_prints_a_line_per_progress_entry_and_the_states_in_the_order_the_job_took(tenant_factory,
                                                                                                 platform):
    tenant = tenant_factory()
    with platform.paused("router"):
        process, out, err = submit_and_wait(tenant, platform)
        job_id = until(lambda: only_job(tenant), 120, "the CLI's job, admitted")
        append_progress(platform, job_id, progress(job_id, candidates=4, generated=4, scored=2, passing=1, images=2,
                                                   eta_s=75, previews=(1,)))
        until(lambda: out.having("progress"), 60, lambda: f"a progress line, while the job is held: {out.lines}")
    assert process.wait(timeout=JOB_TIMEOUT_S) == 0, err.lines
    out.reader.join(timeout=10)

    line = next(line for line in out.lines if " progress " in line)
    assert "4/4 generated · 2 scored · 1/2 passing · 1 needed  ETA 1:15  passed: #1" in line, line
    summary = [line.split()[2] for line in out.lines if line.startswith("  20")]  # "  2026-… 10:00:01  admitted"
    assert summary == COURSE, out.lines


def test_submit_wait_json_writes_each_progress_entry_as_a_json_line_and_keeps_stdout_to_the_job(tenant_factory,
                                                                                                  platform):
    tenant = tenant_factory()
    with platform.paused("router"):
        process, out, err = submit_and_wait(tenant, platform, "--json")
        job_id = until(lambda: only_job(tenant), 120, "the CLI's job, admitted")
        entries = [progress(job_id, candidates=4, generated=2, scored=0, passing=0, images=2, eta_s=None),
                   progress(job_id, candidates=4, generated=4, scored=4, passing=2, images=2, eta_s=0.5,
                            previews=(0, 2))]
        append_progress(platform, job_id, entries[0])
        until(lambda: err.having('"progress"'), 60, lambda: f"a JSON progress line, while held: {err.lines}")
        append_progress(platform, job_id, entries[1])
    assert process.wait(timeout=JOB_TIMEOUT_S) == 0, err.lines
    out.reader.join(timeout=10)
    err.reader.join(timeout=10)

    told = [json.loads(line) for line in err.lines]
    assert [entry["type"] for entry in told] == ["progress", "progress"]
    assert [entry["payload"] for entry in told] == entries
    assert len(out.lines) == 1 and json.loads(out.lines[0])["id"] == job_id  # `| jq .id` still reads one job


def test_on_a_terminal_the_bar_shows_the_counts_and_eta(tenant_factory, platform):
    tenant = tenant_factory()
    output = CommandOutput(as_json=False)
    screen = io.StringIO()
    output.out = output.err = Console(file=screen, force_terminal=True, width=200, color_system=None)
    with Genline(tenant.api_key, platform.ingest_url) as client, ThreadPoolExecutor(1) as waiting:
        with platform.paused("router"):
            job_id = held_job(tenant, platform)
            finished = waiting.submit(partial(follow, client, job_id, output=output, timeout=JOB_TIMEOUT_S))
            append_progress(platform, job_id, progress(job_id, candidates=4, generated=3, scored=1, passing=1,
                                                       images=2, eta_s=42, previews=(1,)))
            until(lambda: "1/2 passing" in screen.getvalue(), 60, "the bar with the entry's counts")
        job = finished.result(timeout=JOB_TIMEOUT_S)
    drawn = screen.getvalue()
    assert job.state == "succeeded"
    assert "3/4 generated · 1 scored · 1/2 passing · 1 needed" in drawn and "ETA 42 s" in drawn
    assert " progress " not in drawn  # on a terminal the bar shows progress, not a line per entry
