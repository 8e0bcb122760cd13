"""An evaluation's images, from wherever they come, screened like an upload and stored by
content in the internal bucket, where the scorer reads them: an upload of the tenant's (already
screened), an image the tenant was delivered, base64, or a URL fetched behind the SSRF guard
(public addresses, and the networks opened for images named by URL alone; the connection
pinned to the address checked, each redirect checked again; bounded in size and time). What
cannot be had is a 422 naming the image and why."""

import base64
import binascii
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx

from services.common import targets
from services.common.contracts import DeliveredImage
from services.common.problems import Problem
from services.common.runtime import ServiceRuntime
from services.common.storage import ObjectStore, StorageError
from services.ingest.evaluations.models import ImageSource
from services.ingest.inputs import ScreeningGate, ScreeningLimits, read_upload
from services.ingest.jobs import read_view
from services.ingest.settings import IngestSettings


def unusable(name: str, why: str) -> Problem:
    return Problem(status=422, slug="image-unusable", detail=f"{name}: {why}", extra={"field": name})


@dataclass(frozen=True, kw_only=True)
class Sources:
    """Where an evaluation's images are read from and kept, and how they are screened."""

    runtime: ServiceRuntime
    settings: IngestSettings
    objects: ObjectStore
    gate: ScreeningGate

    async def stored(self, tenant_id: str, source: ImageSource, *, name: str) -> str:
        """The internal key of the image `source` names, screened and stored."""
        if source.upload_id is not None:
            return await self.upload_key(tenant_id, source.upload_id, name=name)
        data = await self.fetched(tenant_id, source, name=name)
        limits = ScreeningLimits(self.settings.max_upload_bytes, self.settings.max_reference_pixels)
        photo = await self.gate.screen(data, limits, name=name)
        key = f"{tenant_id}/evaluations/{photo.sha256}.{photo.extension}"
        await self.objects.put(self.objects.internal_bucket, key, content=photo)
        return key

    async def upload_key(self, tenant_id: str, upload_id: UUID, *, name: str) -> str:
        async with self.runtime.pool.connection() as conn:
            upload = await read_upload(conn, upload_id, tenant_id=tenant_id)
        if upload is None:
            raise unusable(name, f"you have no upload {upload_id}")
        return str(upload["key"])

    async def named(self, tenant_id: str, source: ImageSource, *, name: str) -> dict[str, Any]:
        """How a batch keeps an image it reads later, checked now as it will be read: an upload
        or a delivered image the tenant has, a URL the guard lets through. One that is none of
        these is refused with the batch, before anything is fetched."""
        if source.url is not None:
            try:
                await image_url_guard(self.settings).address(source.url)
            except targets.RefusedTarget as refused:
                raise unusable(name, f"the URL cannot be fetched: {refused}") from None
        elif source.upload_id is not None:
            await self.upload_key(tenant_id, source.upload_id, name=name)
        elif source.delivered is not None:
            await self.delivered_output(tenant_id, source, name=name)
        return source.shown()

    async def fetched(self, tenant_id: str, source: ImageSource, *, name: str) -> bytes:
        if source.b64 is not None:
            try:
                return base64.b64decode(source.b64, validate=True)
            except (binascii.Error, ValueError):
                raise unusable(name, "b64 is not valid base64") from None
        if source.delivered is not None:
            return await self.delivered(tenant_id, source, name=name)
        assert source.url is not None
        return await self.downloaded(source.url, name)

    async def delivered_output(self, tenant_id: str, source: ImageSource, *, name: str) -> DeliveredImage:
        asked = source.delivered
        assert asked is not None
        async with self.runtime.pool.connection() as conn:
            view = await read_view(conn, asked.job_id, tenant_id=tenant_id)
        output = next((o for o in view.outputs if o.n == asked.n), None) if view is not None else None
        if output is None or not output.media_type.startswith("image/"):
            raise unusable(name, f"you were delivered no image {asked.n} of job {asked.job_id}")
        return output

    async def delivered(self, tenant_id: str, source: ImageSource, *, name: str) -> bytes:
        asked = source.delivered
        assert asked is not None
        output = await self.delivered_output(tenant_id, source, name=name)
        try:
            return await self.objects.get(self.objects.public_bucket, output.key)
        except StorageError:
            raise unusable(name, f"image {asked.n} of job {asked.job_id} is no longer stored") from None

    async def downloaded(self, url: str, name: str) -> bytes:
        """The body at `url`, fetched through the guard of images named by URL (public
        addresses, and the networks opened for this purpose alone; every redirect checked
        again), at most the upload limit, within the fetch timeout."""
        settings = self.settings
        limit, data = settings.max_upload_bytes, b""
        try:
            async with httpx.AsyncClient(timeout=settings.evaluation_fetch_timeout_s) as http, \
                    image_url_guard(settings).stream("GET", url, http=http) as response:
                if response.status_code != 200:
                    raise unusable(name, f"the URL answered {response.status_code}")
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > limit:
                        raise unusable(name, f"the image is larger than {limit} bytes")
        except targets.RefusedTarget as refused:
            raise unusable(name, f"the URL cannot be fetched: {refused}") from None
        except httpx.HTTPError as error:
            raise unusable(name, f"the URL could not be fetched ({type(error).__name__})") from None
        return data


def image_url_guard(settings: IngestSettings) -> targets.Guard:
    """Images a tenant names by URL: their own allow-list, never the webhooks'."""
    return targets.Guard.of(targets.Purpose.IMAGE_URLS, settings.image_url_allowed_networks,
                            redirects=settings.image_url_redirects)
