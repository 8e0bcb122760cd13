"""An evaluation worked through: its images (a window at a time) stored and judged, its charge
once they are, and how it is shown. The same steps answer a single evaluation at once and run
a batch in the background (runner.py)."""

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from services.common.problems import Problem
from services.common.runtime import ServiceRuntime
from services.ingest import subjects
from services.ingest.evaluations import judging
from services.ingest.evaluations import store as evaluation_store
from services.ingest.evaluations.models import MAX_REFERENCES, Evaluation, ImageSource, ImageVerdict, JudgedBy
from services.ingest.evaluations.sources import Sources
from services.ingest.evaluations.store import ImageOutcome


@dataclass(frozen=True)
class Workshop:
    """What an evaluation is worked with: where its images come from, the scorer's settings,
    and the ledger's internal client."""

    sources: Sources
    ledger: httpx.AsyncClient

    @property
    def runtime(self) -> ServiceRuntime:
        return self.sources.runtime

    async def judge(self, row: dict[str, Any], images: list[dict[str, Any]]) -> list[ImageOutcome]:
        """Each image stored and judged; one that cannot be had is an outcome with its error."""
        tenant, asked = row["tenant_id"], JudgedBy.model_validate(row["request"])
        subject_photos = await self.subject_photos(tenant, asked)  # before any image is fetched
        references = [await self.sources.stored(tenant, ref, name=f"references[{n}]") for n, ref in
                      enumerate(asked.references)]
        keys: dict[int, str] = {}
        outcomes: dict[int, ImageOutcome] = {}
        for image in images:
            try:
                keys[image["n"]] = await self.stored(tenant, image)
            except Problem as problem:
                if row["kind"] == "single":
                    raise
                outcomes[image["n"]] = ImageOutcome(n=image["n"], error={"code": problem.slug,
                                                                       "message": problem.detail})
        if keys:
            verdicts = await judging.judged(self.sources.settings, judging.JudgingRequest(
                tenant_id=tenant, asked=asked, image_keys=list(keys.values()), reference_keys=references, subject_photo_keys=subject_photos))
            for (n, key), verdict in zip(keys.items(), verdicts, strict=True):
                outcomes[n] = ImageOutcome(n=n, key=key, verdict=verdict)
        return [outcomes[n] for n in sorted(outcomes)]

    async def subject_photos(self, tenant_id: str, asked: JudgedBy) -> list[str] | None:
        """The sealed objects of up to four of the subject's accepted photos; 422 for a subject
        that is not the tenant's or has none."""
        if asked.subject is None:
            return None
        async with self.runtime.pool.connection() as conn:
            subject = await subjects.read_subject(conn, asked.subject, tenant_id=tenant_id)
            photos = await subjects.subject_photos(conn, asked.subject) \
                if subject and subject["state"] != "erased" else []
        keys = [p["object_key"] for p in photos if p["accepted"] and p["object_key"]][:MAX_REFERENCES]
        if not keys:
            raise Problem(status=422, slug="unknown-subject", detail=f"subject: you have no subject {asked.subject} with accepted photos",
                          extra={"field": "subject"})
        return keys

    async def stored(self, tenant_id: str, image: dict[str, Any]) -> str:
        """The image's internal key: kept already (a batch's base64 images are stored when it is
        made), or stored now from its source."""
        if "key" in image["source"]:
            return str(image["source"]["key"])
        source = ImageSource.model_validate(image["source"])
        return await self.sources.stored(tenant_id, source, name=f"images[{image['n'] - 1}]")

    async def window(self, row: dict[str, Any], size: int) -> bool:
        """Judge the next `size` images and record them; True when none is left."""
        async with self.runtime.pool.connection() as conn:
            images = await evaluation_store.evaluation_images(conn, row["id"], after=row["next_image"], limit=size)
        if images:
            outcomes = await self.judge(row, images)
            async with self.runtime.pool.connection() as conn, conn.transaction():
                await evaluation_store.record_images(conn, row["id"], outcomes=outcomes)
        return len(images) < size

    async def finish(self, row: dict[str, Any]) -> None:
        """Charge the images judged (once) and end the evaluation; without the credits it fails
        and its verdicts are not shown."""
        async with self.runtime.pool.connection() as conn:
            images = await evaluation_store.evaluation_images(conn, row["id"])
        judged_images = sum(1 for image in images if image["verdict"] is not None)
        charge, failure = None, None
        if judged_images:
            try:
                charged = await judging.charged(self.ledger, judging.Bill(row["tenant_id"], row["id"], judged_images))
                charge = charged.model_dump()
            except Problem as problem:
                if problem.status != 402:
                    raise
                failure = {"code": "insufficient_credits", "reason": problem.detail}
        async with self.runtime.pool.connection() as conn:
            await evaluation_store.end_evaluation(conn, row["id"], charge=charge, failure=failure)

    async def shown(self, evaluation_id: uuid.UUID, tenant_id: str) -> Evaluation | None:
        async with self.runtime.pool.connection() as conn:
            row = await evaluation_store.read_evaluation(conn, evaluation_id, tenant_id=tenant_id)
            images = await evaluation_store.evaluation_images(conn, evaluation_id) if row else []
        return evaluation_of(row, images) if row else None


def image_verdict(image: dict[str, Any], withheld: bool) -> ImageVerdict:
    verdict = None if withheld else image["verdict"]
    source = {k: v for k, v in image["source"].items() if k != "key"}
    if verdict is None:
        return ImageVerdict(n=image["n"], source=source, passed=None, error=image["error"])
    return ImageVerdict(n=image["n"], source=source, **verdict)


def evaluation_of(row: dict[str, Any], images: list[dict[str, Any]]) -> Evaluation:
    """An evaluation as shown: its images' verdicts once it is completed (a failed one, for
    want of credits, shows none)."""
    withheld = row["status"] == "failed"
    verdicts = [image_verdict(image, withheld) for image in images]
    return Evaluation(
        id=row["id"], kind=row["kind"], status=row["status"], profile=row["profile"], images_total=row["images"],
        images_done=sum(1 for image in images if image["verdict"] is not None or image["error"] is not None),
        passed=sum(1 for v in verdicts if v.passed), failed=sum(1 for v in verdicts if v.passed is False),
        created_at=row["created_at"], completed_at=row["completed_at"], charge=row["charge"], failure=row["failure"],
        webhook={"url": row["webhook_url"], "state": row["webhook_state"], "attempts": row["webhook_attempts"]}
        if row["webhook_url"] else None, images=verdicts)
