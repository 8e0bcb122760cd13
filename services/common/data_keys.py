"""The client side of ingest's internal data-key API, for the services that need a job's
content in clear (see `services.common.sealing`): the router, the scorer and delivery.

`GET {data_key_url}/internal/v1/jobs/{job_id}/data-key` answers the job's key, or 404 once
the job was erased (its prompt then opens as ERASED); `…/subjects/{subject_id}/data-key` a
subject's, or 404 once the subject was erased. A key is kept in this process's memory
only while the service works on the job: at most `data_key_cache_s`, and `forget(job_id)`
drops it as soon as the service is done with the job.

The key API not answering (ingest restarts, or is rolled out) is `DataKeyUnavailable`, a
`ServiceAway`: never a reason to fail a job. A consumer's handler that raises it is applied
again after a pause, counting none of its attempts; the router waits for it with its claim
held while the job's deadline allows (services.router.generation).
"""

import base64
import time
from uuid import UUID

import httpx

from services.common.bus import ServiceAway
from services.common.contracts import SealedText
from services.common.internal_calls import ServiceAuth, signer_of
from services.common.sealing import JobField, open_sealed
from services.common.settings import SealedContentSettings

PATH = "/internal/v1/jobs/{job_id}/data-key"
# A subject's key: its photos and centroid (services.common.sealing.SubjectField).
SUBJECT_PATH = "/internal/v1/subjects/{subject_id}/data-key"


class DataKeyUnavailable(ServiceAway):
    """Ingest's data-key API did not answer (or refused this service): try again later."""


class DataKeys:
    def __init__(self, settings: SealedContentSettings, service: str) -> None:
        self.settings, self.service = settings, service
        self._keys: dict[str, tuple[bytes | None, float]] = {}
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(base_url=self.settings.data_key_url, timeout=self.settings.data_key_timeout_s,
                                           auth=ServiceAuth(signer_of(self.settings), "ingest"))
        return self._http

    async def key(self, job_id: UUID | str) -> bytes | None:
        """The job's data key; None when the job was erased (or never had one)."""
        return await self._fetched(str(job_id), PATH.format(job_id=job_id))

    async def subject_key(self, subject_id: UUID | str) -> bytes | None:
        """The subject's data key (its photos and centroid); None once the subject was erased."""
        return await self._fetched(str(subject_id), SUBJECT_PATH.format(subject_id=subject_id))

    async def _fetched(self, owner: str, path: str) -> bytes | None:
        cached = self._keys.get(owner)
        if cached is not None and time.monotonic() - cached[1] < self.settings.data_key_cache_s:
            return cached[0]
        try:
            response = await self._client().get(path)
        except httpx.HTTPError as error:
            raise DataKeyUnavailable(f"ingest's data-key API does not answer: {error}") from error
        if response.status_code == 404:
            key = None
        elif response.status_code == 200:
            key = base64.b64decode(response.json()["key"])
        else:
            raise DataKeyUnavailable(f"ingest's data-key API answered {response.status_code} for {path}")
        self._forget_stale()
        self._keys[owner] = (key, time.monotonic())
        return key

    def _forget_stale(self) -> None:
        now = time.monotonic()
        for job in [j for j, (_, at) in self._keys.items() if now - at >= self.settings.data_key_cache_s]:
            del self._keys[job]

    async def open(self, job_id: UUID | str, sealed: SealedText, *, field: str = "prompt") -> str:
        """The clear text (ERASED for an erased job); asks for the key only when it is sealed."""
        if sealed.ciphertext is None:
            return open_sealed(None, JobField(job_id, field), sealed=sealed)
        return open_sealed(await self.key(job_id), JobField(job_id, field), sealed=sealed)

    def forget(self, job_id: UUID | str) -> None:
        self._keys.pop(str(job_id), None)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
