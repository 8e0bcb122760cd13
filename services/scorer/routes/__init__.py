"""The scorer's internal API: calibrate thresholds on images people have judged.

Ingest's calibration report (`/admin/v1/calibration`) gathers the delivered images and what
customers said of them, and asks the scorer for the per-profile, per-dimension figures
(`calibration.calibrate`), so that what a threshold is stays the scorer's. Internal:
served on the scorer's own port, which only the cluster reaches.

Its modules:
    evaluations.py    the scorer's internal API: images the line did not make, judged as a job's
                      candidates are
    measurements.py   the scorer's internal API: measure one photo with named dimensions, judge
                      nothing
"""

import asyncio
import dataclasses
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.common.quality.calibration import Judged
from services.scorer.calibration import calibrate


def calibration_rows(images: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`calibrate` over judged images in their JSON form, each row as JSON."""
    return [dataclasses.asdict(row) for row in calibrate(Judged.from_json(image) for image in images)]


def route() -> Route:
    async def calibration(request: Request) -> JSONResponse:
        try:
            images = (await request.json())["images"]
            rows = await asyncio.to_thread(calibration_rows, images)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            return JSONResponse({"error": f"send {{'images': [judged image, …]}}: {error!r}"}, status_code=400)
        return JSONResponse({"dimensions": rows})

    return Route("/internal/v1/calibration", calibration, methods=["POST"])
