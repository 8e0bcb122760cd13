"""A video job's view and receipt, without I/O: the clips asked, each delivered clip's media
type, length, rate, codec and frames with its poster as thumbnail, the seconds charged; an
image job's receipt reads (and hashes) as before."""

import uuid
from datetime import UTC, datetime, timedelta

from services.common.contracts import (
    CreditsReserved,
    DeliveredImage,
    JobDelivered,
    JobSpec,
    ReservationSettled,
    VideoSpec,
)
from services.ingest.jobs.domain import JobView, apply_event, submitted_view
from services.ingest.jobs.job_log import event_facts
from services.ingest.receipts.document import ReceiptBody, ReceiptStamp, receipt_body
from services.ingest.receipts.replay import LedgerJournal, credit_problems

T0 = datetime(2026, 11, 27, tzinfo=UTC)


def spec(video: VideoSpec | None) -> JobSpec:
    return JobSpec(job_id=uuid.uuid4(), tenant_id="t", template="text-to-video" if video else "generic", prompt="p",
                   images=2, candidates=3, seed=1, submitted_at=T0, video=video)


def clip(n: int, duration_ms: int) -> DeliveredImage:
    return DeliveredImage(n=n, key=f"t/2026/11/j/{n}.mp4", url="u", expires_at=T0, sha256="s", size_bytes=9,
                          media_type="video/mp4", width=854, height=480, frames=duration_ms * 24 // 1000,
                          duration_ms=duration_ms, fps=24.0, codec="h264", thumbnail_key=f"t/2026/11/j/{n}.poster.webp",
                          thumbnail_media_type="image/webp")


def ended(job: JobSpec, outputs: list[DeliveredImage], charged: int, seconds: int) -> JobView:
    events = [CreditsReserved(job_id=job.job_id, tenant_id="t", job=job, transfer_id=uuid.uuid4(), amount=80,
                              unit_price=40, pricebook_version="2026-11-26"),
              JobDelivered(job_id=job.job_id, tenant_id="t", requested=job.images, images=outputs),
              ReservationSettled(job_id=job.job_id, tenant_id="t", transfer_id=uuid.uuid4(), reserved=80,
                                 charged=charged, released=80 - charged, delivered_images=len(outputs),
                                 delivered_seconds=seconds)]
    view = submitted_view(job)
    for i, event in enumerate(events):
        view = apply_event(view, event, at=T0 + timedelta(seconds=i + 1))
    return view


def test_a_video_jobs_view_shows_its_clips_and_the_seconds_charged():
    job = spec(VideoSpec(duration_s=4, aspect_ratio="16:9", resolution="480p", fps=24, first_frame_key="t/ref.png"))
    view = ended(job, [clip(1, 4000), clip(2, 2500)], charged=70, seconds=7)
    shown = view.model_dump(mode="json")
    assert shown["video"] == {"duration_s": 4.0, "aspect_ratio": "16:9", "resolution": "480p", "fps": 24}
    assert "first_frame_key" not in shown["video"]  # an internal key stays inside
    assert [(o["media_type"], o["duration_ms"], o["fps"], o["codec"], o["frames"]) for o in shown["outputs"]] == [
        ("video/mp4", 4000, 24.0, "h264", 96), ("video/mp4", 2500, 24.0, "h264", 60)]
    assert shown["outputs"][0]["thumbnail_media_type"] == "image/webp"
    assert view.reasons["succeeded"] == "2 of 2 clips delivered"
    assert (shown["billing"]["charged"], shown["billing"]["seconds_charged"]) == (70, 7)
    # The view a client reads back validates as it was written.
    assert JobView.model_validate(shown | {"prompt": "p"}).outputs[1].duration_ms == 2500


def test_a_video_jobs_receipt_names_each_clips_duration_codec_and_frames():
    job = spec(VideoSpec(duration_s=4, resolution="480p"))
    body = receipt_body(ended(job, [clip(1, 4000), clip(2, 2500)], charged=70, seconds=7),
                        ReceiptStamp(sequence=1, previous_sha256=None, kid="kid", issued_at=T0))
    ReceiptBody.model_validate(body)
    assert [o["clip"] for o in body["outputs"]] == [
        {"duration_ms": 4000, "codec": "h264", "fps": 24.0, "frames": 96},
        {"duration_ms": 2500, "codec": "h264", "fps": 24.0, "frames": 60}]
    assert body["credits"]["seconds_charged"] == 7


def test_an_image_jobs_receipt_has_no_clip_parts():
    job = spec(None)
    image = DeliveredImage(n=1, key="t/2026/11/j/1.png", url="u", expires_at=T0, sha256="s", size_bytes=1,
                           media_type="image/png")
    body = receipt_body(ended(job, [image], charged=10, seconds=0), ReceiptStamp(sequence=1, previous_sha256=None, kid="kid", issued_at=T0))
    assert "clip" not in body["outputs"][0] and "seconds_charged" not in body["credits"]
    assert body["outputs"][0] == {"n": 1, "key": "t/2026/11/j/1.png", "sha256": "s", "media_type": "image/png",
                                  "size_bytes": 1, "manifest_label": None, "watermark_id": None}


def test_a_video_jobs_log_lists_each_delivered_clip_and_the_seconds_charged():
    job = spec(VideoSpec(duration_s=4, resolution="480p"))
    view = ended(job, [], charged=0, seconds=0)  # the view a clip's events are applied to
    delivered = JobDelivered(job_id=job.job_id, tenant_id="t", requested=2, images=[clip(1, 4000)])
    [(kind, entry)] = event_facts(view, delivered)
    assert kind == "delivery.published" and entry == {"images": 1, "requested": 2, "clips": [
        {"n": 1, "media_type": "video/mp4", "duration_ms": 4000, "fps": 24.0, "codec": "h264", "frames": 96}]}
    settled = ReservationSettled(job_id=job.job_id, tenant_id="t", transfer_id=uuid.uuid4(), reserved=80, charged=40,
                                 released=40, delivered_images=1, delivered_seconds=4)
    assert event_facts(view, settled)[0][1]["seconds_charged"] == 4
    # An image job's entries read as they always did.
    stills = ended(spec(None), [], charged=0, seconds=0)
    assert "seconds_charged" not in event_facts(stills, settled)[0][1]
    assert "clips" not in event_facts(stills, delivered)[0][1]


def test_the_receipt_replay_holds_a_video_receipts_seconds_to_the_ledgers_journal():
    job = spec(VideoSpec(duration_s=4, resolution="480p"))
    body = receipt_body(ended(job, [clip(1, 4000), clip(2, 2500)], charged=70, seconds=7),
                        ReceiptStamp(sequence=1, previous_sha256=None, kid="kid", issued_at=T0))
    journal = LedgerJournal()
    journal.reserved[job.job_id] = CreditsReserved(job_id=job.job_id, tenant_id="t", job=job, transfer_id=uuid.uuid4(),
                                                   amount=80, unit_price=40, pricebook_version="2026-11-26")
    settled = ReservationSettled(job_id=job.job_id, tenant_id="t", transfer_id=uuid.uuid4(), reserved=80, charged=70,
                                 released=10, delivered_images=2, delivered_seconds=7)
    journal.settled[job.job_id] = settled
    assert credit_problems(body, journal) == []
    journal.settled[job.job_id] = settled.model_copy(update={"delivered_seconds": 8})
    assert credit_problems(body, journal) == [
        f"receipt={job.job_id} credits.seconds_charged: receipt=7 journal=8"]


def test_a_video_jobs_selection_is_told_in_clips():
    from services.common.contracts import CandidateScore, CandidatesScored

    job = spec(VideoSpec(duration_s=4, aspect_ratio="16:9", resolution="480p"))
    chosen = CandidateScore(index=0, key="k", sha256="s", size_bytes=1, media_type="video/mp4", passed=True, score=1.0,
                            dimensions={})
    view = apply_event(submitted_view(job), CandidatesScored(job_id=job.job_id, tenant_id="t", attempt=1, images=2,
                                                             scores=[chosen], selected=[0]), at=T0)
    assert view.reasons["delivering"] == "1 of 2 clips selected"
