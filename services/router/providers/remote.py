"""What the HTTP adapters share: one submit → write down → wait → fetch → check flow.

`RemoteProvider.generate` runs a call under the request's deadline:

1. input: the pinned model's `ModelInputs` turn the request into the model's input and
   the size its images must have;
2. submit, unless the journal holds a job of this very call still running or done (a
   restarted router polls that one again: nobody pays twice). A synchronous API
   (`_submit` returns the output itself) stops here;
3. write the job's handle in the journal, before the first poll;
4. wait: poll every `poll_interval_s` (or when the provider's callback arrives); a poll
   that fails with 429, 5xx or a network error is tried again with backoff, as long as the
   provider asks (Retry-After, or the wait its body states) up to `poll_backoff_max_s`;
5. fetch the images (credentials only to the provider's hosts, redirects and size capped)
   and check each (`outputs.py`); an output its host no longer serves (401/403/404/410:
   expired or deleted) is asked of the job once more for a fresh URL, else the call's
   candidates are lost, billed; the images are copied (`copies.py`) before the job is
   written down as succeeded, and a resumed call that finds a copy takes it;
6. on any failure after submit, and when the caller gives up, cancel the remote job
   (unless it ended on its own, or the router is stopping and hands it over) and write
   its end.

A clip (a request with `video`) is one remote job per candidate: the model's input from its
`inputs.video` (length, aspect ratio, tier, rate; the candidate's still as the first frame
on `animate`), the output one MP4 URL, fetched and copied to the internal bucket as soon as
the job is done (Replicate deletes outputs after an hour) and checked as a clip
(`outputs.checked_clip`: read from the file); its price is the clip's, not the compute's.

A stage other than generate runs when the provider's configuration has a `stages` entry
for it: each candidate's image goes to the stage's model as a data: URI, one remote job per
candidate, and what comes back must be an image Pillow opens (the scorer and delivery read
nothing else), or the call fails and the engine falls back.

The call and the output are `remote_calls.py`'s; what a job costs, `billing.py`'s.
"""

import asyncio
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, ClassVar

import httpx

from services.router.clock import LoopClock
from services.router.providers.adapters import AdapterTraits
from services.router.providers.base import GeneratedImage, GenerationRequest, ProviderContext, ProviderError
from services.router.providers.billing import BilledJob, billed_micro_usd, shares
from services.router.providers.copies import CopiedOutput
from services.router.providers.entry_parts import HostedStage, ModelPin
from services.router.providers.hosted_files import FileHost, HostedPhotos
from services.router.providers.journal import RemoteJobState
from services.router.providers.outputs import Expectation, checked_clip, checked_image
from services.router.providers.payloads import decode_data_uri
from services.router.providers.registry import ProviderConfig
from services.router.providers.remote_calls import (
    Fetched,
    OutputImage,
    RemoteCall,
    RemoteOutput,
    clip_call,
    generate_call,
    stage_call,
)
from services.router.providers.transport import ApiRequest, ProviderHttp, status_error


class RemoteProvider(ABC):
    """A hosted HTTP provider; subclasses say how to submit, poll, cancel and read outputs."""

    traits: ClassVar[AdapterTraits]
    # Whether the API can cancel a job. One that cannot runs on when abandoned (and is paid):
    # it stays written down as running, so the next call for it polls it instead.
    can_cancel: ClassVar[bool] = True

    def __init__(self, config: ProviderConfig, context: ProviderContext, *, secret: str | None = None) -> None:
        if context.client is None:
            raise ValueError(f"provider {config.name!r} ({config.adapter}) needs an httpx.AsyncClient")
        self.name = config.name
        self.config = config
        self.secret = secret
        self.context = context
        self.clock = context.clock or LoopClock()
        self.http = ProviderHttp(config, context.client, auth_headers=self._auth_headers(), outputs=context.outputs)
        self._hosted: HostedPhotos | None = None

    # ---- what an adapter says ------------------------------------------------------------

    @classmethod  # noqa: B027 - optional: most adapters have no rule beyond their options model
    def check_config(cls, config: ProviderConfig, options: Any) -> None:
        """Rules of this adapter's configuration beyond its options model; raise ValueError."""

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"} if self.secret else {}

    def _file_host(self) -> FileHost | None:
        """Where this API keeps files its models read (hosted_files.py); None: it keeps none."""
        return None

    @abstractmethod
    async def _submit(self, call: RemoteCall) -> dict[str, Any] | RemoteOutput:
        """Queue the call; the handle `_poll` and `_cancel` need (JSON), or, for an API that
        answers at once, the output itself."""

    async def _poll(self, handle: dict[str, Any]) -> RemoteOutput | None:
        """The output once the job is done; None while it is queued or running."""
        raise NotImplementedError

    async def _cancel(self, handle: dict[str, Any]) -> None:  # noqa: B027 - optional: some APIs cannot cancel
        """Ask the provider to drop the job."""

    def _remote_id(self, handle: dict[str, Any]) -> str:
        return str(handle.get("id", ""))

    def _error(self, response: httpx.Response) -> ProviderError:
        """An unsuccessful answer, read against the table (adapters refine it from the body)."""
        return status_error(self.name, response)

    async def verify_webhook(self, headers: Mapping[str, str], body: bytes) -> str:
        """The remote id a genuine callback is about; raises `WebhookRejected` otherwise."""
        raise NotImplementedError(f"{self.name} takes no callbacks")

    # ---- the flow ------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> list[GeneratedImage]:
        if request.identity is not None and request.identity.mode == "reference":
            request = await self._with_hosted_photos(request)
        if request.video is not None:
            # A video model makes one clip per job: one remote job per candidate.
            return await self._one_by_one(request, self._clip_call)
        if request.capability == "generate":
            runs = request.style_runs()
            if len(runs) > 1:  # a model makes one style per call: a call per run of one style
                return await self._each(runs, self._generate_call)
            return await self._run(self._generate_call(request))
        stage = self.config.stages.get(request.capability)
        if stage is None:
            # A stage declared in capabilities with no `stages` entry: we would not know where
            # its image goes, so refuse rather than return a fresh painting as its output.
            raise ProviderError(kind="bad_request", message=f"{self.name}: no stages.{request.capability} is configured for"
                                               f" the {self.config.adapter} adapter, so it cannot run"
                                               f" {request.capability}")
        # Image-to-image models take one image per call: one remote job per candidate.
        return await self._one_by_one(request, lambda single: self._stage_call(single, stage))

    async def _with_hosted_photos(self, request: GenerationRequest) -> GenerationRequest:
        """The request with its subject's photos at the provider's storage (uploaded once each,
        for every call of the order): a model reads them by URL, never inline."""
        identity = request.identity
        assert identity is not None
        if identity.photo_urls:
            return request
        if self._hosted is None:
            host = self._file_host()
            if host is None:
                raise ProviderError(kind="bad_request", message=f"{self.name} keeps no files: a subject's photos cannot"
                                                   " reach its models")
            self._hosted = HostedPhotos(host)
        return replace(request, identity=replace(identity, photo_urls=await self._hosted.urls(identity)))

    async def _one_by_one(self, request: GenerationRequest,
                         call_for: Callable[[GenerationRequest], RemoteCall]) -> list[GeneratedImage]:
        return await self._each([replace(request, start_index=index, count=1) for index in request.indices], call_for)

    async def _each(self, parts: list[GenerationRequest],
                    call_for: Callable[[GenerationRequest], RemoteCall]) -> list[GeneratedImage]:
        """One remote job per part, side by side; the first provider error fails them all."""
        try:
            async with asyncio.TaskGroup() as group:
                runs = [group.create_task(self._run(call_for(part))) for part in parts]
        except ExceptionGroup as failed:
            raise _first_provider_error(failed) from None
        return [image for run in runs for image in run.result()]

    def _clip_call(self, request: GenerationRequest) -> RemoteCall:
        return clip_call(self.config, request)

    def _generate_call(self, request: GenerationRequest) -> RemoteCall:
        call = generate_call(self.config, request)
        return replace(call, payload=self._model_payload(call.payload, request, pin=call.pin))

    def _stage_call(self, request: GenerationRequest, stage: HostedStage) -> RemoteCall:
        return stage_call(self.config, request, stage=stage)

    def _model_payload(self, payload: dict[str, Any], request: GenerationRequest, *, pin: ModelPin) -> dict[str, Any]:
        """The model's input as this API wants it (ComfyUI puts it in a workflow graph)."""
        return payload

    async def _run(self, call: RemoteCall) -> list[GeneratedImage]:
        started = self.clock.now()
        try:
            async with asyncio.timeout(call.deadline_s):
                output = await self._job(call)
        except TimeoutError:
            raise ProviderError(kind="timeout", message=f"{self.name} did not finish in {call.deadline_s:.1f} s") from None
        return self._generated(call, output, latency_s=self.clock.now() - started)

    async def _job(self, call: RemoteCall) -> "Fetched":
        journal = self.context.journal
        earlier = await journal.resumable(call.key) if journal is not None else None
        if earlier is not None and earlier.state == "succeeded":
            copied = await self._copied(call)
            if copied is not None:
                return copied  # fetched before a restart: its URLs may have expired since
        handle = earlier.handle if earlier is not None else None
        submitted: dict[str, Any] | RemoteOutput | None = handle
        try:
            if handle is None:
                submitted = await self._submitted(call)
                if isinstance(submitted, RemoteOutput):
                    return submitted, await self._fetched_or_lost(call, submitted)
                handle = submitted
            done = await self._wait_and_fetch(call, handle)
        except BaseException as error:
            if submitted is not None:
                await self._abandon(call, submitted, error=error)
            raise
        await self._copy(call, done)
        await self._ended(call, handle, state="succeeded")
        return done

    async def _wait_and_fetch(self, call: RemoteCall, handle: dict[str, Any]) -> "Fetched":
        """The job's output and images; an output whose host no longer serves it (a signature
        that expired, an output deleted after its hour) is asked of the job once more, which
        gives its URL again, signed anew where the API signs them."""
        output = await self._wait(call, handle)
        try:
            return output, await self._kept(call, output)
        except ProviderError as error:
            if not error.output_gone:
                raise
        output = await self._wait(call, handle)
        return output, await self._fetched_or_lost(call, output)

    async def _kept(self, call: RemoteCall, output: RemoteOutput) -> list[tuple[bytes, str, int | None]]:
        """The images, each checked; an output refused (damaged, blank, not what was asked) is
        the provider's defect, and its job's whole bill all the same: the provider made it."""
        try:
            return await self._fetched(call, output)
        except ProviderError as error:
            if error.kind != "bad_output" or error.billed_micro_usd:
                raise
            raise replace(error, terminal=True, billed_micro_usd=self._billed(
                BilledJob(call=call, output=output, count=max(output.billed_images, len(output.images))))) from None

    async def _fetched_or_lost(self, call: RemoteCall, output: RemoteOutput) -> list[tuple[bytes, str, int | None]]:
        """The images; one that is gone loses the call's candidates, billed all the same."""
        try:
            return await self._kept(call, output)
        except ProviderError as error:
            if not error.output_gone:
                raise
            raise ProviderError(kind="server_error", message=f"{self.name}: the outputs expired before they were fetched:"
                                                f" {error}", terminal=True,
                                billed_micro_usd=self._billed(BilledJob(call=call, output=output, count=len(output.images)))) from None

    # ---- copies of fetched outputs -------------------------------------------------------

    async def _copy(self, call: RemoteCall, done: "Fetched") -> None:
        """Keep the fetched images where a resumed call finds them (the internal bucket)."""
        copies = self.context.copies
        if copies is None:
            return
        output, images = done
        try:
            await asyncio.shield(copies.put(call.key, CopiedOutput(output.compute_s, output.cost_micro_usd,
                                                                   tuple(images))))
        except Exception:  # noqa: BLE001 - the images are in hand; only a resume after a crash would miss them
            pass

    async def _copied(self, call: RemoteCall) -> "Fetched | None":
        copies = self.context.copies
        copied = await copies.get(call.key) if copies is not None else None
        if copied is None:
            return None
        return RemoteOutput(images=tuple(OutputImage(data=data, seed=seed) for data, _, seed in copied.images),
                            compute_s=copied.compute_s, cost_micro_usd=copied.cost_micro_usd), list(copied.images)

    async def _submitted(self, call: RemoteCall) -> dict[str, Any] | RemoteOutput:
        """Submit, and write the job down before it is polled: first, where the API lets us
        name the job ourselves (then a crash between the two cannot lose it)."""
        journal = self.context.journal
        named = self._name_before_submit(call)
        if named is not None and journal is not None:
            await journal.started(call.key, named)
        try:
            submitted = await self._submit(replace(call, named=named))
        except ProviderError as error:
            # A submit lost on the network may have arrived: a named job stays written down,
            # so the next try polls it rather than submitting it again.
            if named is not None and not error.transient:
                await self._ended(call, named, state="failed")
            raise
        if isinstance(submitted, RemoteOutput) and named is not None:
            await self._ended(call, named, state="succeeded")  # it answered at once
        if isinstance(submitted, dict) and named is None and journal is not None:
            try:
                await journal.started(call.key, submitted)
            except BaseException:
                # Not written down, it could never be resumed: it must not run on unseen.
                await asyncio.shield(self._cancel_quietly(call, submitted))
                raise
        return submitted

    def _name_before_submit(self, call: RemoteCall) -> dict[str, Any] | None:
        """The job's handle before it is submitted, for APIs where the client names jobs."""
        return None

    async def _wait(self, call: RemoteCall, handle: dict[str, Any]) -> RemoteOutput:
        failures = 0
        try:
            while True:
                try:
                    output = await self._poll(handle)
                except ProviderError as error:
                    if error.kind == "bad_request" and not error.terminal:
                        # We asked about our own job: a 404 or 400 now means the provider lost it.
                        raise ProviderError(kind="server_error", message=f"{self.name} no longer knows the job: {error}",
                                            terminal=True) from None
                    if not _worth_polling_again(error):
                        raise
                    failures += 1
                    await self._pause(handle, self._backoff_s(failures, error.retry_after_s))
                    continue
                if output is not None:
                    return output
                failures = 0
                await self._pause(handle, self._poll_interval_s())
        finally:
            if self.context.webhooks is not None:
                self.context.webhooks.forget(self.name, self._remote_id(handle))

    async def _pause(self, handle: dict[str, Any], seconds: float) -> None:
        inbox = self.context.webhooks
        if inbox is not None and self.config.webhooks is not None:
            await inbox.wait(self.name, self._remote_id(handle), timeout_s=seconds)
        else:
            await self.clock.sleep(seconds)

    def _poll_interval_s(self) -> float:
        webhooks = self.config.webhooks
        return webhooks.poll_interval_s if webhooks is not None and self.context.webhooks else \
            self.config.poll_interval_s

    def _backoff_s(self, failures: int, asked_s: float | None) -> float:
        doubled: float = self.config.poll_interval_s * 2 ** (failures - 1)
        return min(self.config.timeouts.poll_backoff_max_s, max(doubled, asked_s or 0.0))

    async def _abandon(self, call: RemoteCall, handle: dict[str, Any] | RemoteOutput, *, error: BaseException) -> None:
        """After a failure, or when the caller gives up: cancel the job, and write its end."""
        if isinstance(error, ProviderError) and (error.terminal or error.kind == "bad_output"):
            await self._ended(call, handle, state="failed")  # it ended at the provider: nothing to cancel
            return
        if self.context.handing_over and isinstance(error, asyncio.CancelledError):
            return  # left running and written down: the next router resumes it
        if self.can_cancel and isinstance(handle, dict):  # an answer given at once left no job to cancel
            await asyncio.shield(self._cancel_quietly(call, handle))

    async def _cancel_quietly(self, call: RemoteCall, handle: dict[str, Any]) -> None:
        try:
            await asyncio.wait_for(self._cancel(handle), self.config.timeouts.submit_s)
        except (ProviderError, TimeoutError):
            pass
        await self._ended(call, handle, state="canceled")

    async def _ended(self, call: RemoteCall, handle: dict[str, Any] | RemoteOutput | None, *, state: RemoteJobState) -> None:
        journal = self.context.journal
        if journal is None or handle is None:
            return
        try:
            await asyncio.shield(journal.ended(call.key, state))
        except Exception:  # noqa: BLE001 - the outcome stands; a stale "running" row is only polled again
            pass

    # ---- outputs -------------------------------------------------------------------------

    async def _fetched(self, call: RemoteCall, output: RemoteOutput) -> list[tuple[bytes, str, int | None]]:
        wanted = output.images[: call.request.count]
        return list(await asyncio.gather(*(self._image(call, image) for image in wanted)))

    async def _image(self, call: RemoteCall, image: OutputImage) -> tuple[bytes, str, int | None]:
        declared = None
        if image.data is not None:
            data = image.data
        elif image.url is not None and image.url.startswith("data:"):
            data = decode_data_uri(image.url)
        elif image.url is not None:
            download = await self.http.download(image.url)
            data, declared = download.data, download.media_type
        else:
            raise ProviderError(kind="bad_output", message=f"{self.name}: an output has neither a URL nor bytes")
        expected = Expectation(provider=self.name, size=call.size, tolerance=self.config.inputs_for(call.pin).size_tolerance,
                               reject_blank=self.config.outputs.reject_blank and not call.is_stage)
        checked = checked_clip if call.clip_seconds is not None else checked_image
        return data, checked(data, expected, declared=declared), image.seed

    def _generated(self, call: RemoteCall, done: "Fetched", *, latency_s: float) -> list[GeneratedImage]:
        output, images = done
        # What the job was billed is spread over the images kept: one billed and dropped (a
        # safety filter's) makes the others dearer, as it does on the invoice.
        billed = self._billed(BilledJob(call=call, output=output, count=max(output.billed_images, len(images)), latency_s=latency_s))
        costs = shares(billed, len(images))
        return [GeneratedImage(index=index, data=data, media_type=media_type, seed=seed, cost_micro_usd=cost,
                               latency_s=latency_s)
                for index, (data, media_type, seed), cost in zip(call.request.indices, images, costs)]

    def _billed(self, job: BilledJob) -> int:
        return billed_micro_usd(self.config, job)

    def provider_deadline_s(self, call: RemoteCall) -> int:
        """The call's deadline in whole seconds, for APIs that take one (rounded up)."""
        return max(1, math.ceil(call.deadline_s))

    async def _send(self, asked: ApiRequest, ok: tuple[int, ...] = (200, 201, 202)) -> httpx.Response:
        """The answer, if its status is one of `ok`; else the error it reads as."""
        response = await self.http.request(asked)
        if response.status_code not in ok:
            raise self._error(response)
        return response

    def url(self, path: str) -> str:
        return f"{self.config.base_url}{path}"


def _worth_polling_again(error: ProviderError) -> bool:
    """A poll's error that says nothing final about the job: the network, 429 or 5xx."""
    return not error.terminal and (error.transient or error.kind in ("rate_limited", "server_error", "timeout"))


def _first_provider_error(failed: ExceptionGroup) -> Exception:
    errors = [e for e in failed.exceptions if isinstance(e, ProviderError)]
    return errors[0] if errors else failed
