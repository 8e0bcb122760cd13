"""`AsyncGenline`, the asyncio client: the same calls as `Genline`, awaited.

    async with AsyncGenline() as client:
        job = await client.jobs.create("a red bicycle", images=2)
        async for event in client.jobs.stream(job):
            print(event.seq, event.type)
        receipt = await client.receipt(job)
"""

from __future__ import annotations  # `list[...]` below, inside a class with a `list` method

import asyncio
import inspect
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from os import PathLike
from pathlib import Path
from typing import Any

import httpx

from genline_client import _calls
from genline_client._download import OutputFile, download_request, take_up
from genline_client.aio_batches import AsyncBatches, AsyncEvaluations
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
from genline_client.subjects import AsyncSubjects


class AsyncGenline:
    def __init__(self, api_key: str | None = None, base_url: str | None = None, *, timeout: float = 30.0,
                 retry: RetryPolicy = RetryPolicy(), transport: httpx.AsyncBaseTransport | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.base_url, api_key = _calls.resolve_config(api_key, base_url)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport,
                                       headers={"Authorization": f"Bearer {api_key}", "User-Agent": _calls.USER_AGENT})
        self._retry, self._sleep = retry, sleep
        self.jobs = AsyncJobs(self)
        self.batches = AsyncBatches(self)
        self.evaluations = AsyncEvaluations(self)
        self.subjects = AsyncSubjects(self)

    async def __aenter__(self) -> AsyncGenline:
        return self

    async def upload(self, photo: str | PathLike | bytes, media_type: str | None = None) -> Upload:
        """Upload a photo for a later job (see `Genline.upload`)."""
        content = photo if isinstance(photo, bytes) else Path(photo).read_bytes()
        return Upload.model_validate(await self.call(_calls.upload(content, media_type)))

    async def receipt(self, job: Any) -> dict[str, Any]:
        """The job's signed receipt, once the job is final (see `Genline.receipt`)."""
        return await self.call(_calls.job_receipt(job))

    async def receipts(self, after: int = 0, page_size: int = 100) -> AsyncIterator[dict[str, Any]]:
        """Your receipts in chain order after sequence `after`, page by page."""
        position: int | None = after
        while position is not None:
            page = await self.call(_calls.receipt_page(position, page_size))
            for document in page["data"]:
                yield document
            position = page["next_after"]

    async def quote(self, template: str = "generic", images: int = 1, **options: Any) -> dict[str, Any]:
        """What a job would cost now (see `Genline.quote`)."""
        return await self.call(_calls.quote(template, images, options=options))

    async def signing_keys(self) -> dict[str, Any]:
        """The public keys receipts are signed with (JWK), rotated-out ones included."""
        return await self.call(_calls.signing_keys())

    async def account(self) -> Account:
        """Your credits: available, held for jobs in progress, and owed (`Account.owed`: while
        above 0, new jobs are refused until credits bought pay it)."""
        return Account.model_validate(await self.call(_calls.account()))

    async def billing(self) -> dict[str, Any]:
        """The credit packs on sale, your auto top-up rule, and your latest checkouts and top-ups."""
        return await self.call(_calls.billing())

    async def checkout(self, pack: str, *, save_card: bool = False, success_url: str | None = None,
                 cancel_url: str | None = None) -> Checkout:
        """Open a checkout for credit `pack` (see `billing()`); the payer pays at `Checkout.url`.
        `save_card` keeps the card for auto top-up."""
        return Checkout.model_validate(await self.call(_calls.checkout(pack, save_card, success_url=success_url, cancel_url=cancel_url)))

    async def set_auto_topup(self, below: int, pack: str, max_per_month: int, enabled: bool = True) -> dict[str, Any]:
        """Buy `pack` with the saved card whenever charges take the balance below `below`, at
        most `max_per_month` times a month; answers like `billing()`."""
        return await self.call(_calls.set_auto_topup(below, pack, max_per_month=max_per_month, enabled=enabled))

    async def usage(self, days: int = 30) -> Usage:
        """Your plan, its limits and where you stand against each, and your last `days` UTC
        days (`Usage.daily`: jobs ended, images delivered, credits charged)."""
        return Usage.model_validate(await self.call(_calls.usage(days)))

    async def usage_attribution(self, group_by: str = "end_user", days: int = 30) -> dict[str, Any]:
        """Jobs, images and credits of your last `days` UTC days per end user (`group_by`
        "end_user") or per value of a metadata key ("metadata.<key>"), summed from receipts."""
        return await self.call(_calls.usage_attribution(group_by, days))

    async def api_keys(self) -> list[dict[str, Any]]:
        """Your keys, each with its spend caps and what it spent today and this month."""
        return (await self.call(_calls.api_keys()))["data"]

    async def set_key_caps(self, key_id: str, *, daily_cap_credits: int | None = None,
                     monthly_cap_credits: int | None = None) -> dict[str, Any]:
        """Set a key's spend caps in credits per UTC day and month (None lifts one)."""
        return await self.call(_calls.set_key_caps(str(key_id), daily_cap_credits, monthly=monthly_cap_credits))

    async def me(self) -> dict[str, Any]:
        """Who this key is: its tenant, the member or service account that owns it, and its scopes."""
        return await self.call(_calls.me())

    async def members(self) -> list[dict[str, Any]]:
        """Your organization's members and service accounts, each with its role (members:manage)."""
        return (await self.call(_calls.members()))["data"]

    async def invite(self, email: str, role: str) -> dict[str, Any]:
        """Invite someone by mail to join in `role`; the mail carries a signed, single-use link."""
        return await self.call(_calls.invite(email, role))

    async def invitations(self) -> list[dict[str, Any]]:
        return (await self.call(_calls.invitations()))["data"]

    async def revoke_invitation(self, invitation_id: str) -> None:
        await self.call(_calls.revoke_invitation(str(invitation_id)))

    async def set_member_role(self, member_id: str, role: str) -> dict[str, Any]:
        """Give a member another role; their sessions end, their keys narrow to the new role."""
        return await self.call(_calls.set_member_role(str(member_id), role))

    async def remove_member(self, member_id: str, *, move_keys_to: str | None = None) -> None:
        """Remove a member; their keys are revoked unless moved to another member or service account."""
        await self.call(_calls.remove_member(str(member_id), move_keys_to and str(move_keys_to)))

    async def audit_log(self, *, action: str | None = None, actor: str | None = None,
                        limit: int = 100) -> list[dict[str, Any]]:
        """Your organization's audit log, newest first (audit:read)."""
        return (await self.call(_calls.audit_log({"action": action, "actor": actor, "limit": limit})))["entries"]

    async def alerts(self) -> dict[str, Any]:
        """Your alert settings and latest alerts (balance low, grant expiring, key cap reached,
        top-up failed), newest first."""
        return await self.call(_calls.alerts())

    async def set_alert_settings(self, *, balance_low_below: int | None = None,
                           grant_expiring_days: int = 7) -> dict[str, Any]:
        return await self.call(_calls.set_alert_settings(balance_low_below, grant_expiring_days))

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def call(self, call: _calls.Call) -> Any:
        """Send one call, with retries; its JSON answer, or the problem as an exception."""
        request = self._http.build_request(call.method, call.path, params=call.params, json=call.json,
                                           headers=call.headers, content=call.content)
        response = await self._send(request)
        return None if response.status_code == 204 else response.json()

    async def content(self, path: str) -> bytes:
        """The body of a GET of `path` with your key, with retries: an image, not JSON."""
        return (await self._send(self._http.build_request("GET", path))).content

    async def _send(self, request: httpx.Request, stream: bool = False) -> httpx.Response:
        for attempt in itertools.count():
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as error:
                delay = self._retry.after_error(attempt)
                if delay is None:
                    raise APIConnectionError(f"{request.method} {request.url}: {error!r}") from error
            else:
                delay = self._retry.after_response(attempt, response)
                if delay is None:
                    return await _checked(response)
                await response.aclose()
            await self._sleep(delay)
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def _open(self, request: httpx.Request) -> AsyncIterator[httpx.Response]:
        response = await self._send(request, stream=True)
        try:
            yield response
        finally:
            await response.aclose()

    async def stream_events(self, path: str, after: str | None = None,
                            deadline: float | None = None) -> AsyncIterator[JobEvent]:
        """The entries of an event stream, resumed after the last one received when the
        connection drops; ends when the server ends the stream."""
        position = _calls.StreamPosition(path=path, last_id=after, deadline=deadline)
        while True:
            try:
                async with self._open(position.request(self._http)) as response:
                    parser = EventStreamParser(last_event_id=position.last_id)
                    async for line in response.aiter_lines():
                        if (message := parser.feed(line)) and (event := position.received(message)):
                            yield event
                return
            except httpx.TransportError as error:
                await self._sleep(position.delay_after(error, self._retry))

    async def download_to(self, url: str, file: OutputFile) -> Path:
        """Write the content of `url` into `file`, taken up again from the bytes received
        when the connection breaks part-way (see `Genline.download_to`)."""
        try:
            stalled = 0  # tries in a row that received nothing
            while True:
                had = file.received
                try:
                    async with self._open(download_request(self._http, url, file=file)) as response:
                        take_up(response, file)
                        async for chunk in response.aiter_bytes():
                            file.write(chunk)
                    return file.finish()
                except httpx.TransportError as error:
                    stalled = 0 if file.received > had else stalled
                    await self._sleep(_calls.resume_delay(error, url, retry=self._retry, stalled=stalled))
                    stalled += 1
        except BaseException:
            file.discard()
            raise


async def _awaited(results: list[Any]) -> None:
    for result in results:
        if inspect.isawaitable(result):
            await result


async def _checked(response: httpx.Response) -> httpx.Response:
    if not response.is_success:
        await response.aread()
        await response.aclose()
        raise_for_problem(response)
    return response


class AsyncJobs:
    """`client.jobs`: submit, follow, cancel and download jobs."""

    def __init__(self, client: AsyncGenline) -> None:
        self._client = client

    async def create(self, prompt: str, *, images: int = 1, template: str | None = None,
                     idempotency_key: str | None = None, video: Video | dict[str, Any] | None = None,
                     **options: Any) -> SubmittedJob:
        """Submit a job (with `video`, a job for clips); see `Jobs.create`."""
        call = _calls.create_job(prompt, images, template=template, idempotency_key=idempotency_key, options=options | {"video": video})
        return SubmittedJob.model_validate(await self._client.call(call))

    submit = create

    async def get(self, job: Any) -> Job:
        return Job.model_validate(await self._client.call(_calls.Call(method="GET", path=f"/v1/jobs/{_calls.job_id_of(job)}")))

    async def list(self, *, limit: int | None = None, cursor: str | None = None, state: str | None = None,
                   template: str | None = None, created_after=None, created_before=None) -> JobPage:
        call = _calls.list_jobs(limit, cursor, state=state, template=template, created_after=created_after, created_before=created_before)
        return JobPage.model_validate(await self._client.call(call))

    async def iterate(self, **filters: Any) -> AsyncIterator[JobSummary]:
        cursor = None
        while True:
            page = await self.list(cursor=cursor, **filters)
            for summary in page.data:
                yield summary
            if not (cursor := page.next):
                return

    async def cancel(self, job: Any) -> Job:
        call = _calls.Call(method="POST", path=f"/v1/jobs/{_calls.job_id_of(job)}/cancel")
        return Job.model_validate(await self._client.call(call))

    async def events(self, job: Any, after: int = 0) -> list[JobEvent]:
        entries = []
        while True:
            page = JobEvents.model_validate(await self._client.call(_calls.job_events(job, after)))
            entries += page.data
            if page.next is None:
                return entries
            after = page.next

    def stream(self, job: Any, after: int | None = None) -> AsyncIterator[JobEvent]:
        return self._client.stream_events(_calls.job_stream(job), None if after is None else str(after))

    def stream_all(self, after: int | None = None) -> AsyncIterator[JobEvent]:
        return self._client.stream_events(_calls.TENANT_STREAM, None if after is None else str(after))

    async def wait(self, job: Any, *, timeout: float | None = None, poll_interval: float = 1.0,
                   on_event: Callable[[JobEvent], Any] | None = None,
                   on_progress: Callable[[Progress], Any] | None = None) -> Job:
        """The job once it is final; see `Jobs.wait`. A callback may be a coroutine function:
        it is awaited before the next entry is read."""
        deadline = _calls.deadline_in(timeout)
        listeners = _calls.Listeners(on_event, on_progress)
        try:
            async for event in self._client.stream_events(_calls.job_stream(job), None, deadline=deadline):
                await _awaited(listeners.hand_on(event))
        except NotFound as error:
            if not _calls.has_no_stream(error):
                raise
        while True:
            view = await self.get(job)
            # The log read after the view: a final view's entries are all in it by then.
            for event in await self.events(job, after=listeners.after) if listeners.listening else []:
                await _awaited(listeners.hand_on(event))
            if view.final:
                return view
            if _calls.past(deadline):
                raise WaitTimeout(f"job {view.id} is still {view.state}")
            await asyncio.sleep(poll_interval)

    async def preview(self, preview: Preview | str) -> bytes:
        """A passing candidate's image, from a progress entry's `Preview` (or its `url`)."""
        return await self._client.content(_calls.preview_path(preview))

    async def download(self, job: Any, directory: str | PathLike) -> list[Path]:
        if not isinstance(job, Job) or _calls.links_expire_soon(job):
            job = await self.get(job)
        return [await self._client.download_to(output.url, OutputFile(Path(directory), str(job.id), output=output))
                for output in job.outputs]

