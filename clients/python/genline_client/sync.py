"""`Genline`, the synchronous client.

    client = Genline()                      # GENLINE_API_URL, GENLINE_API_KEY
    job = client.jobs.create("a red bicycle", images=2)
    job = client.jobs.wait(job)             # follows the job's event stream to its end
    paths = client.jobs.download(job, "out/")
    verify_receipt(client.receipt(job), client.signing_keys())   # what the job cost, signed
    print(client.usage().limits)            # the plan's limits and where you stand
"""

from __future__ import annotations  # `list[...]` below, inside a class with a `list` method

import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any

import httpx

from genline_client import _calls
from genline_client._download import OutputFile, download_request, take_up
from genline_client.batches import Batches, Evaluations
from genline_client.errors import APIConnectionError, NotFound, WaitTimeout, raise_for_problem
from genline_client.models import (
    Account,
    Checkout,
    Job,
    JobEvent,
    JobEvents,
    JobPage,
    JobSummary,
    Preview,
    Progress,
    SubmittedJob,
    Upload,
    Usage,
    Video,
)
from genline_client.retry import RetryPolicy
from genline_client.sse import EventStreamParser
from genline_client.subjects import Subjects


class Genline:
    def __init__(self, api_key: str | None = None, base_url: str | None = None, *, timeout: float = 30.0,
                 retry: RetryPolicy = RetryPolicy(), transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url, api_key = _calls.resolve_config(api_key, base_url)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport,
                                  headers={"Authorization": f"Bearer {api_key}", "User-Agent": _calls.USER_AGENT})
        self._retry, self._sleep = retry, sleep
        self.jobs = Jobs(self)
        self.batches = Batches(self)
        self.evaluations = Evaluations(self)
        self.subjects = Subjects(self)

    def __enter__(self) -> Genline:
        return self

    def receipt(self, job: Any) -> dict[str, Any]:
        """The job's signed receipt, once the job is final: `{"receipt", "sha256", "signature"}`,
        to check offline with `verify_receipt(receipt, client.signing_keys())`."""
        return self.call(_calls.job_receipt(job))

    def receipts(self, after: int = 0, page_size: int = 100) -> Iterator[dict[str, Any]]:
        """Your receipts in chain order after sequence `after` (0: from the first), page by
        page: the chain `verify_chain(client.receipts(), client.signing_keys())` checks."""
        position: int | None = after
        while position is not None:
            page = self.call(_calls.receipt_page(position, page_size))
            yield from page["data"]
            position = page["next_after"]

    def upload(self, photo: str | PathLike | bytes, media_type: str | None = None) -> Upload:
        """Upload a photo (a path or its bytes: JPEG, PNG or WebP) for a later job, which names
        it as `input_upload=upload.id`: an input photo, or the first frame of a clip. The API
        screens it and answers 422 with what to change when it cannot be used."""
        content = photo if isinstance(photo, bytes) else Path(photo).read_bytes()
        return Upload.model_validate(self.call(_calls.upload(content, media_type)))

    def quote(self, template: str = "generic", images: int = 1, **options: Any) -> dict[str, Any]:
        """What a job would cost now (nothing is held): `credits`, and for a job of a subject
        (`subject=`) its training line, `training_credits`; other fields of POST /v1/quotes in
        `options` (`tier`, `identity`, `video` …)."""
        return self.call(_calls.quote(template, images, options=options))

    def signing_keys(self) -> dict[str, Any]:
        """The public keys receipts are signed with (JWK), rotated-out ones included."""
        return self.call(_calls.signing_keys())

    def account(self) -> Account:
        """Your credits: available, held for jobs in progress, and owed (`Account.owed`: while
        above 0, new jobs are refused until credits bought pay it)."""
        return Account.model_validate(self.call(_calls.account()))

    def billing(self) -> dict[str, Any]:
        """The credit packs on sale, your auto top-up rule, and your latest checkouts and top-ups."""
        return self.call(_calls.billing())

    def checkout(self, pack: str, *, save_card: bool = False, success_url: str | None = None,
                 cancel_url: str | None = None) -> Checkout:
        """Open a checkout for credit `pack` (see `billing()`); the payer pays at `Checkout.url`.
        `save_card` keeps the card for auto top-up."""
        return Checkout.model_validate(self.call(_calls.checkout(pack, save_card, success_url=success_url, cancel_url=cancel_url)))

    def set_auto_topup(self, below: int, pack: str, max_per_month: int, enabled: bool = True) -> dict[str, Any]:
        """Buy `pack` with the saved card whenever charges take the balance below `below`, at
        most `max_per_month` times a month; answers like `billing()`."""
        return self.call(_calls.set_auto_topup(below, pack, max_per_month=max_per_month, enabled=enabled))

    def usage(self, days: int = 30) -> Usage:
        """Your plan, its limits and where you stand against each, and your last `days` UTC
        days (`Usage.daily`: jobs ended, images delivered, credits charged)."""
        return Usage.model_validate(self.call(_calls.usage(days)))

    def usage_attribution(self, group_by: str = "end_user", days: int = 30) -> dict[str, Any]:
        """Jobs, images and credits of your last `days` UTC days per end user (`group_by`
        "end_user") or per value of a metadata key ("metadata.<key>"), summed from receipts."""
        return self.call(_calls.usage_attribution(group_by, days))

    def api_keys(self) -> list[dict[str, Any]]:
        """Your keys, each with its spend caps and what it spent today and this month."""
        return self.call(_calls.api_keys())["data"]

    def set_key_caps(self, key_id: str, *, daily_cap_credits: int | None = None,
                     monthly_cap_credits: int | None = None) -> dict[str, Any]:
        """Set a key's spend caps in credits per UTC day and month (None lifts one)."""
        return self.call(_calls.set_key_caps(str(key_id), daily_cap_credits, monthly=monthly_cap_credits))

    def me(self) -> dict[str, Any]:
        """Who this key is: its tenant, the member or service account that owns it, and its scopes."""
        return self.call(_calls.me())

    def members(self) -> list[dict[str, Any]]:
        """Your organization's members and service accounts, each with its role (members:manage)."""
        return self.call(_calls.members())["data"]

    def invite(self, email: str, role: str) -> dict[str, Any]:
        """Invite someone by mail to join in `role`; the mail carries a signed, single-use link."""
        return self.call(_calls.invite(email, role))

    def invitations(self) -> list[dict[str, Any]]:
        return self.call(_calls.invitations())["data"]

    def revoke_invitation(self, invitation_id: str) -> None:
        self.call(_calls.revoke_invitation(str(invitation_id)))

    def set_member_role(self, member_id: str, role: str) -> dict[str, Any]:
        """Give a member another role; their sessions end, their keys narrow to the new role."""
        return self.call(_calls.set_member_role(str(member_id), role))

    def remove_member(self, member_id: str, *, move_keys_to: str | None = None) -> None:
        """Remove a member; their keys are revoked unless moved to another member or service account."""
        self.call(_calls.remove_member(str(member_id), move_keys_to and str(move_keys_to)))

    def audit_log(self, *, action: str | None = None, actor: str | None = None,
                  limit: int = 100) -> list[dict[str, Any]]:
        """Your organization's audit log, newest first (audit:read)."""
        return self.call(_calls.audit_log({"action": action, "actor": actor, "limit": limit}))["entries"]

    def alerts(self) -> dict[str, Any]:
        """Your alert settings and latest alerts (balance low, grant expiring, key cap reached,
        top-up failed), newest first."""
        return self.call(_calls.alerts())

    def set_alert_settings(self, *, balance_low_below: int | None = None,
                           grant_expiring_days: int = 7) -> dict[str, Any]:
        return self.call(_calls.set_alert_settings(balance_low_below, grant_expiring_days))

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def call(self, call: _calls.Call) -> Any:
        """Send one call, with retries; its JSON answer, or the problem as an exception."""
        request = self._http.build_request(call.method, call.path, params=call.params, json=call.json,
                                           headers=call.headers, content=call.content)
        response = self._send(request)
        return None if response.status_code == 204 else response.json()

    def content(self, path: str) -> bytes:
        """The body of a GET of `path` with your key, with retries: an image, not JSON."""
        return self._send(self._http.build_request("GET", path)).content

    def _send(self, request: httpx.Request, stream: bool = False) -> httpx.Response:
        for attempt in itertools.count():
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as error:
                delay = self._retry.after_error(attempt)
                if delay is None:
                    raise APIConnectionError(f"{request.method} {request.url}: {error!r}") from error
            else:
                delay = self._retry.after_response(attempt, response)
                if delay is None:
                    return _checked(response)
                response.close()
            self._sleep(delay)
        raise AssertionError("unreachable")

    @contextmanager
    def _open(self, request: httpx.Request) -> Iterator[httpx.Response]:
        response = self._send(request, stream=True)
        try:
            yield response
        finally:
            response.close()

    def stream_events(self, path: str, after: str | None = None, deadline: float | None = None) -> Iterator[JobEvent]:
        """The entries of an event stream, resumed after the last one received when the
        connection drops; ends when the server ends the stream."""
        position = _calls.StreamPosition(path=path, last_id=after, deadline=deadline)
        while True:
            try:
                with self._open(position.request(self._http)) as response:
                    parser = EventStreamParser(last_event_id=position.last_id)
                    for line in response.iter_lines():
                        if (message := parser.feed(line)) and (event := position.received(message)):
                            yield event
                return
            except httpx.TransportError as error:
                self._sleep(position.delay_after(error, self._retry))

    def download_to(self, url: str, file: OutputFile) -> Path:
        """Write the content of `url` into `file`; a connection that breaks part-way is taken
        up again from the bytes received (`Range`), with the retry policy's waits."""
        try:
            stalled = 0  # tries in a row that received nothing
            while True:
                had = file.received
                try:
                    with self._open(download_request(self._http, url, file=file)) as response:
                        take_up(response, file)
                        for chunk in response.iter_bytes():
                            file.write(chunk)
                    return file.finish()
                except httpx.TransportError as error:
                    stalled = 0 if file.received > had else stalled
                    self._sleep(_calls.resume_delay(error, url, retry=self._retry, stalled=stalled))
                    stalled += 1
        except BaseException:
            file.discard()
            raise


def _checked(response: httpx.Response) -> httpx.Response:
    if not response.is_success:
        response.read()
        response.close()
        raise_for_problem(response)
    return response


class Jobs:
    """`client.jobs`: submit, follow, cancel and download jobs."""

    def __init__(self, client: Genline) -> None:
        self._client = client

    def create(self, prompt: str, *, images: int = 1, template: str | None = None,
               idempotency_key: str | None = None, video: Video | dict[str, Any] | None = None,
               **options: Any) -> SubmittedJob:
        """Submit a job. Other fields of the API's job request (`candidates`, `tier`, `seed`,
        `quality`, `deadline_s`, `input_upload`, `subject` (a Subject or its id), `identity`,
        `styles` …) go in `options`. Retries carry one
        Idempotency-Key, so a submission retried after a lost answer is still one job.

        With `video` the job delivers clips (MP4) rather than images, `images` of them::

            job = client.jobs.create("waves rolling onto a beach", template="text-to-video",
                                     video=Video(duration_s=4, aspect_ratio="16:9", resolution="480p"))
            still = client.upload("beach.jpg")  # image-to-video: the clip starts from this photo
            job = client.jobs.create("the tide comes in", template="image-to-video", input_upload=str(still.id),
                                     video=Video(duration_s=4, resolution="480p"))
        """
        call = _calls.create_job(prompt, images, template=template, idempotency_key=idempotency_key, options=options | {"video": video})
        return SubmittedJob.model_validate(self._client.call(call))

    submit = create  # a job of a subject: `submit(prompt, template="subject-headshots", subject=subject)`

    def get(self, job: Any) -> Job:
        return Job.model_validate(self._client.call(_calls.Call(method="GET", path=f"/v1/jobs/{_calls.job_id_of(job)}")))

    def list(self, *, limit: int | None = None, cursor: str | None = None, state: str | None = None,
             template: str | None = None, created_after=None, created_before=None) -> JobPage:
        call = _calls.list_jobs(limit, cursor, state=state, template=template, created_after=created_after, created_before=created_before)
        return JobPage.model_validate(self._client.call(call))

    def iterate(self, **filters: Any) -> Iterator[JobSummary]:
        """Every job matching the filters of `list`, newest first, page after page."""
        cursor = None
        while True:
            page = self.list(cursor=cursor, **filters)
            yield from page.data
            if not (cursor := page.next):
                return

    def cancel(self, job: Any) -> Job:
        """Cancel a job that is not final (again is harmless); `Conflict` once it is final."""
        return Job.model_validate(self._client.call(_calls.Call(method="POST", path=f"/v1/jobs/{_calls.job_id_of(job)}/cancel")))

    def events(self, job: Any, after: int = 0) -> list[JobEvent]:
        """The job's event log after entry `after`, every page of it."""
        entries = []
        while True:
            page = JobEvents.model_validate(self._client.call(_calls.job_events(job, after)))
            entries += page.data
            if page.next is None:
                return entries
            after = page.next

    def stream(self, job: Any, after: int | None = None) -> Iterator[JobEvent]:
        """The job's events as they happen (after entry `after`; all without it), until the
        job is final; a dropped connection resumes after the last entry received."""
        return self._client.stream_events(_calls.job_stream(job), None if after is None else str(after))

    def stream_all(self, after: int | None = None) -> Iterator[JobEvent]:
        """Every job's events from now on (after `cursor` `after`, when given); it does not end."""
        return self._client.stream_events(_calls.TENANT_STREAM, None if after is None else str(after))

    def wait(self, job: Any, *, timeout: float | None = None, poll_interval: float = 1.0,
             on_event: Callable[[JobEvent], None] | None = None,
             on_progress: Callable[[Progress], None] | None = None) -> Job:
        """The job once it is final (`WaitTimeout` after `timeout` s).

        It follows the job's event stream to its end; on a platform without streams, or when
        a stream ends before the job does, it reads the job and its event log every
        `poll_interval` s. The callbacks see each log entry once, in `seq` order, as it
        arrives: `on_event` every entry (`JobEvent`: states, attempts, billing, progress …),
        `on_progress` the `Progress` of each `progress` entry (candidates generated, scored
        and passing, images still needed, an ETA, and the candidates that just passed)::

            def show(progress: Progress) -> None:
                print(f"{progress.passing}/{progress.images} passing, {progress.needed} needed")
                for preview in progress.previews:
                    Path(f"{preview.index}.png").write_bytes(client.jobs.preview(preview))

            job = client.jobs.wait(job, on_progress=show)
        """
        deadline = _calls.deadline_in(timeout)
        listeners = _calls.Listeners(on_event, on_progress)
        try:
            for event in self._client.stream_events(_calls.job_stream(job), None, deadline=deadline):
                listeners.hand_on(event)
        except NotFound as error:
            if not _calls.has_no_stream(error):
                raise
        return self._poll(job, deadline, poll_interval=poll_interval, listeners=listeners)

    def _poll(self, job: Any, deadline: float | None, *, poll_interval: float, listeners: _calls.Listeners) -> Job:
        while True:
            view = self.get(job)
            # The log read after the view: a final view's entries are all in it by then.
            for event in self.events(job, after=listeners.after) if listeners.listening else []:
                listeners.hand_on(event)
            if view.final:
                return view
            if _calls.past(deadline):
                raise WaitTimeout(f"job {view.id} is still {view.state}")
            time.sleep(poll_interval)

    def preview(self, preview: Preview | str) -> bytes:
        """A passing candidate's image, from a progress entry's `Preview` (or its `url`),
        read with your API key."""
        return self._client.content(_calls.preview_path(preview))

    def download(self, job: Any, directory: str | PathLike) -> list[Path]:
        """Write the job's delivered images or clips into `directory` as `<job id>-<n>.<ext>`,
        each checked against its sha256 (`ChecksumMismatch` otherwise); their paths. A
        download whose connection breaks goes on from the bytes it has (`Range`)."""
        if not isinstance(job, Job) or _calls.links_expire_soon(job):
            job = self.get(job)
        return [self._client.download_to(output.url, OutputFile(Path(directory), str(job.id), output=output))
                for output in job.outputs]

