"""A job's `video` object: the clips it asks for, the rules that refuse at once what no plan
or template allows, and the first frame a clip starts from.

A job is a video job iff its request has `video` (then `JobSpec.video` is set): `images`
counts the clips to deliver (K) and `candidates` the clips to make (N). A template says
whether its jobs may or must ask for clips (`video` in templates.yaml); the tenant's plan
bounds a clip's seconds and resolution (`video_seconds_max`, `video_resolution_max`), within
the platform's 60 seconds. The rules are pure; only `delivered_still` reads the record.
"""

from uuid import UUID

from pydantic import ConfigDict, Field
from pydantic.config import JsonDict

from services.common.api import RequestModel
from services.common.contracts import RESOLUTIONS, AspectRatio, Resolution, VideoSpec
from services.common.db import Conn
from services.common.problems import Problem
from services.common.templates import Template
from services.ingest.jobs import store
from services.ingest.plans import VIDEO_SECONDS_MAX, Plan

VIDEO_EXAMPLE: JsonDict = {"duration_s": 4, "aspect_ratio": "16:9", "resolution": "480p", "fps": 24}


class FirstFrame(RequestModel):
    """An image you were delivered, as the still a clip starts from."""

    job_id: UUID = Field(strict=False, description="a job of yours that delivered the image")
    n: int = Field(ge=1, description="the image's `n` in that job's `outputs`")


class VideoRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [VIDEO_EXAMPLE]})

    # No upper bound here: a clip longer than the plan (or the platform) allows is refused with
    # the limit that applies (422 video-not-allowed), not as malformed.
    duration_s: float = Field(gt=0, allow_inf_nan=False,
                              description=f"each clip's length in seconds; your plan's video_seconds_max at most"
                                          f" (the platform's: {VIDEO_SECONDS_MAX}); charged by the delivered second")
    aspect_ratio: AspectRatio = "16:9"
    resolution: Resolution = Field("720p", description="the short side: 480p, 720p or 1080p; your plan's"
                                                       " video_resolution_max at most")
    fps: int | None = Field(None, ge=1, le=60, description="frames per second where the model takes it; the"
                                                          " model's own when left out")
    first_frame: FirstFrame | None = Field(None, description="an image you were delivered as the still the clip"
                                                             " starts from (templates that start from a still),"
                                                             " instead of input_upload or reference_image")


def check_video(template_name: str, template: Template, *, video: VideoRequest | None) -> None:
    """Refuse (422) a request whose clips the template or the platform does not allow, or that
    a video template needs and lacks."""
    if video is None:
        if template.video == "required":
            raise Problem(status=422, slug="video-required", detail=f"template {template_name!r} makes video clips: give `video`"
                          " (duration_s, aspect_ratio, resolution, fps)", extra={"template": template_name})
        return
    if template.video == "never":
        raise Problem(status=422, slug="video-not-allowed", detail=f"template {template_name!r} makes images, not clips: leave out"
                      " `video`, or use a video template (text-to-video, image-to-video, motion)",
                      extra={"template": template_name, "field": "video"})
    if video.first_frame is not None and not template.needs_input:
        raise Problem(status=422, slug="video-not-allowed", detail=f"template {template_name!r} does not start from a still, so"
                      " video.first_frame has no use; use image-to-video", extra={"template": template_name,
                                                                                  "field": "video.first_frame"})
    if video.duration_s > VIDEO_SECONDS_MAX:
        raise Problem(status=422, slug="video-not-allowed", detail=f"clips are at most {VIDEO_SECONDS_MAX} seconds long; this job asks"
                      f" for {video.duration_s:g}", extra={"limit": VIDEO_SECONDS_MAX, "field": "video.duration_s"})


def check_plan_limits(video: VideoRequest | None, plan: Plan) -> None:
    """Refuse (422) a clip longer or sharper than the plan allows."""
    if video is None:
        return
    if video.duration_s > plan.video_seconds_max:
        limit = plan.video_seconds_max
        raise Problem(status=422, slug="video-not-allowed", detail=f"plan {plan.name!r} allows clips of at most {limit:g} seconds;"
                      f" this job asks for {video.duration_s:g}",
                      extra={"plan": plan.name, "limit": limit, "field": "video.duration_s"})
    if RESOLUTIONS[video.resolution] > RESOLUTIONS[plan.video_resolution_max]:
        raise Problem(status=422, slug="video-not-allowed", detail=f"plan {plan.name!r} allows clips up to"
                      f" {plan.video_resolution_max}; this job asks for {video.resolution}", extra={"plan": plan.name,
                      "limit": plan.video_resolution_max, "field": "video.resolution"})


def video_spec(video: VideoRequest | None, template: Template, *, input_key: str | None) -> VideoSpec | None:
    """What the job asks of its clips; the first frame is its input photo where the template's
    pipeline starts from one (otherwise the template makes its own still, or none)."""
    if video is None:
        return None
    return VideoSpec(duration_s=video.duration_s, aspect_ratio=video.aspect_ratio, resolution=video.resolution,
                     fps=video.fps, first_frame_key=input_key if template.needs_input else None)


async def delivered_still(conn: Conn, tenant_id: str, *, first_frame: FirstFrame) -> tuple[str, str]:
    """The public key and media type of the image `first_frame` names; 422 when the tenant was
    delivered no such image (another tenant's job is as unknown as none), or it is a clip."""
    view = await store.read_view(conn, first_frame.job_id, tenant_id=tenant_id)
    output = next((o for o in view.outputs if o.n == first_frame.n), None) if view is not None else None
    if output is None:
        raise Problem(status=422, slug="unknown-first-frame", detail=f"video.first_frame: you were delivered no image {first_frame.n}"
                      f" of job {first_frame.job_id}", extra={"field": "video.first_frame"})
    if not output.media_type.startswith("image/") or output.frames > 1:
        raise Problem(status=422, slug="unknown-first-frame", detail=f"video.first_frame: output {first_frame.n} of job"
                      f" {first_frame.job_id} is a clip ({output.media_type}), not a still",
                      extra={"field": "video.first_frame"})
    return output.key, output.media_type
