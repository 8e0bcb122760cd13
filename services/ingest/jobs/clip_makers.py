"""Whether a clip a job asks for can be made at all: the router knows its providers' video
models (what lengths, tiers, shapes and first frames each takes), so ingest asks it
(`FindClipMakers`) before it accepts a video job, and refuses one nobody can make (422
no-video-model, with the router's reasons). A router that does not answer, or does not know
the question yet, lets the job through: it would then fail at generation, at no cost."""

import logging
from dataclasses import dataclass
from typing import Annotated, Any

import grpc
from fastapi import Depends, Request

from services.common.problems import Problem
from services.common.protos import load
from services.common.templates import Template
from services.ingest.jobs.video_request import VideoRequest

pb, rpc = load("genline.router.v1")
log = logging.getLogger(__name__)


async def router_stub(request: Request) -> Any:
    return request.app.state.router_stub


Router = Annotated[object, Depends(router_stub)]


def starts_from_image(template: Template) -> bool:
    """The clip is made by `animate` (from a still: the job's, or the template's own); a
    `generate` that makes clips makes them from the prompt alone."""
    return any(stage.capability == "animate" for stage in template.pipeline)


@dataclass(frozen=True)
class ClipOrder:
    """The clips a job asks for: as the request says them, the template that makes them, and
    the model the job pins (None: any)."""

    video: VideoRequest
    template: Template
    model: str | None = None

    def request(self) -> Any:  # its stubs are built untyped
        video = self.video
        return pb.FindClipMakersRequest(duration_s=video.duration_s, aspect_ratio=video.aspect_ratio,
                                        resolution=video.resolution, fps=video.fps or 0,
                                        from_image=starts_from_image(self.template), model=self.model or "")

    def said(self) -> str:
        video = self.video
        source = "from a still" if starts_from_image(self.template) else "from a prompt"
        return f"{video.duration_s:g} s {video.resolution} {video.aspect_ratio} clips {source}"


async def check_clip_makers(stub: Any, timeout_s: float, *, order: ClipOrder | None) -> None:
    """Refuse (422 no-video-model) a clip no provider's model can make."""
    if order is None or stub is None:
        return
    try:
        answer = await stub.FindClipMakers(order.request(), timeout=timeout_s)
    except grpc.aio.AioRpcError as error:
        log.warning("the router could not say who makes %s (%s); the job goes ahead", order.said(), error.code().name)
        return
    if not answer.providers:
        reasons = list(answer.reasons)
        why = f": {'; '.join(reasons)}" if reasons else ": no provider here makes clips"
        pinned = f" with model {order.model!r}" if order.model else ""
        raise Problem(status=422, slug="no-video-model", detail=f"no video model{pinned} on this platform makes {order.said()}{why}",
                      extra={"reasons": reasons})
