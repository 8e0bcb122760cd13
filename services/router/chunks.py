"""An attempt's candidates stored as its calls return them, and announced in chunks.

The keeper is the engine's `ImageKeeper` for an attempt's last stage: each call's images go to
the internal bucket at once, one object per call (`AttemptKeys.chunk`), and the engine keeps them
without their bytes, so a router holds only the calls in flight, whatever the order's size.
Every `chunk_candidates` stored candidates are announced (CandidatesStored), while the attempt's
claim is still this router's, so the scorer scores them while the rest is generated. The
attempt's CandidatesGenerated lists every candidate all the same; the scorer scores an index once.
"""

import hashlib
import io
import time
from dataclasses import dataclass, field, replace

from PIL import Image

from services.common import video
from services.common.contracts import CandidateRef, CandidatesStored, CandidateStep
from services.common.runtime import ServiceRuntime
from services.common.storage import ATTEMPT_MEDIA_TYPE, AttemptKeys, Blob, ObjectStore
from services.router import domain, store
from services.router.routing_types import RoutedImage
from services.router.store import QueuedAttempt


@dataclass(eq=False, kw_only=True)
class CandidateKeeper:
    """Stores one run (`run`: its try number) of an attempt's candidates, announcing them every
    `chunk_candidates` while `owner` holds the attempt; `candidates_before` earlier attempts made."""

    runtime: ServiceRuntime
    objects: ObjectStore
    job: domain.AdmittedJob
    request: QueuedAttempt
    run: int
    owner: str
    chunk_candidates: int
    candidates_before: int
    refs: dict[int, CandidateRef] = field(init=False, default_factory=dict)
    _pending: list[CandidateRef] = field(init=False, default_factory=list)
    _planned: int = field(init=False, default=0)
    _started: float = field(init=False, default_factory=time.monotonic)

    def planned(self, candidates: int) -> None:
        self._planned += candidates

    async def keep(self, stage: str, images: list[RoutedImage]) -> list[RoutedImage]:
        spec = self.job.spec
        key = AttemptKeys(spec.tenant_id, spec.job_id, self.request.attempt).chunk(self.run, images[0].image.index)
        await self.objects.put(self.objects.internal_bucket, key,
                               content=Blob(b"".join(r.image.data for r in images), ATTEMPT_MEDIA_TYPE))
        offset = 0
        for routed in images:
            image = routed.image
            step = CandidateStep(stage=stage, provider=routed.provider, cost_micro_usd=image.cost_micro_usd,
                                 latency_ms=round(image.latency_s * 1000))
            self.refs[image.index] = stored_ref(routed, StoredAt(key, offset), steps=[step])
            self._pending.append(self.refs[image.index])
            offset += len(image.data)
        if len(self._pending) >= self.chunk_candidates:
            await self._announce()
        return [replace(routed, image=replace(routed.image, data=b"")) for routed in images]

    def ref_of(self, routed: RoutedImage) -> CandidateRef | None:
        """The stored candidate with every stage it went through; None if it was not kept."""
        ref = self.refs.get(routed.image.index)
        if ref is None or routed.image.data:
            return None
        steps = steps_of(routed)
        return ref.model_copy(update={"steps": steps, "provider": routed.provider,
                                      "cost_micro_usd": candidate_cost(routed, steps), "model": routed.model,
                                      "model_version": routed.model_version})

    async def _announce(self) -> None:
        chunk, self._pending = self._pending, []
        spec = self.job.spec
        event = CandidatesStored(job_id=spec.job_id, tenant_id=spec.tenant_id, attempt=self.request.attempt,
                                 images=spec.images, candidates=chunk, planned=max(self._planned, len(self.refs)),
                                 stored=len(self.refs), candidates_before=self.candidates_before,
                                 eta_s=self._eta_s(), job=spec)
        async with self.runtime.pool.connection() as conn:
            announced = await store.announce_if_held(conn, self.request, owner=self.owner, announces=self.runtime.outbox_row(event))
        if announced:
            self.runtime.relay.notify()

    def _eta_s(self) -> float | None:
        """Seconds until the attempt is generated, at the pace its calls have kept so far."""
        left = self._planned - len(self.refs)
        if not self.refs or left < 0:
            return None
        return round((time.monotonic() - self._started) / len(self.refs) * left, 1)


def steps_of(routed: RoutedImage) -> list[CandidateStep]:
    return [CandidateStep(stage=step.stage, provider=step.provider, cost_micro_usd=step.cost_micro_usd,
                          latency_ms=round(step.latency_s * 1000)) for step in routed.steps]


def candidate_cost(routed: RoutedImage, steps: list[CandidateStep]) -> int:
    return sum(s.cost_micro_usd for s in steps) if steps else routed.image.cost_micro_usd


@dataclass(frozen=True, slots=True)
class StoredAt:
    """Where a candidate's bytes are: at `offset` in the internal bucket's object `key`."""

    key: str
    offset: int


def stored_ref(routed: RoutedImage, at: StoredAt, *, steps: list[CandidateStep]) -> CandidateRef:
    """A candidate stored `at` a place, described from its bytes."""
    image = routed.image
    if image.media_type in video.VIDEO_MEDIA_TYPES:
        return _stored_clip(routed, at, steps=steps)
    with Image.open(io.BytesIO(image.data)) as opened:  # reads the header (and a clip's frame table)
        (width, height), frames = opened.size, getattr(opened, "n_frames", 1)
        duration_ms = sum(_frame_durations(opened)) if frames > 1 else 0
    return CandidateRef(index=image.index, key=at.key, offset=at.offset, media_type=image.media_type,
                        size_bytes=len(image.data), sha256=hashlib.sha256(image.data).hexdigest(),
                        width=width, height=height, provider=routed.provider,
                        cost_micro_usd=sum(s.cost_micro_usd for s in steps) if steps else image.cost_micro_usd,
                        frames=frames, duration_ms=duration_ms, steps=steps, model=routed.model,
                        model_version=routed.model_version, style=routed.style)


def _stored_clip(routed: RoutedImage, at: StoredAt, *, steps: list[CandidateStep]) -> CandidateRef:
    """A clip described from its file (`video.probe`): frames, length, rate, codec and size; one
    whose file does not read is stored all the same, with nothing claimed for it, for the
    scorer to refuse with its reason."""
    image = routed.image
    try:
        info = video.probe(image.data)
        shape = {"width": info.width, "height": info.height, "frames": max(1, info.frames),
                 "duration_ms": info.duration_ms, "fps": info.fps, "codec": info.codec}
    except video.ClipError:
        shape = {"width": 0, "height": 0, "frames": 1, "duration_ms": 0, "fps": 0, "codec": ""}
    return CandidateRef(index=image.index, key=at.key, offset=at.offset, media_type=image.media_type,
                        size_bytes=len(image.data), sha256=hashlib.sha256(image.data).hexdigest(),
                        provider=routed.provider,
                        cost_micro_usd=sum(s.cost_micro_usd for s in steps) if steps else image.cost_micro_usd,
                        steps=steps, model=routed.model, model_version=routed.model_version, style=routed.style,
                        **shape)


def _frame_durations(clip: Image.Image) -> list[int]:
    durations: list[int] = []
    for frame in range(clip.n_frames):  # type: ignore[attr-defined]  # Pillow's animated formats set it
        clip.seek(frame)
        durations.append(int(clip.info.get("duration", 0)))
    return durations
