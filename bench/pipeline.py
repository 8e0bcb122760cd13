"""Stage costs on the CPU: each local stage provider's CPU time on a 1-megapixel image,
and what a template's stages add to a job over generating alone.

    python bench/pipeline.py [--repeat 3]

Per stage: the image operation alone (`image_stages`), on a 1024×1024 photo (scikit-image's
astronaut, upscaled; the upscale stage gets a 512×512 image, so its output is 1 MP). Per
template: one candidate through the router's engine and `run_pipeline` with the shipped
registry, simulated provider latency turned off, so what is measured is the work; the
ratio is against the generate-only job (`generic`) measured in the same run.
"""

import argparse
import asyncio
import io
import statistics
import sys
import time
import uuid
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genline_stack.stopping import run_stoppable  # noqa: E402
from services.common.templates import load_catalogue  # noqa: E402
from services.router.engine import RoutingEngine  # noqa: E402
from services.router.pipeline import run_pipeline  # noqa: E402
from services.router.providers import image_stages  # noqa: E402
from services.router.providers.factory import build_providers  # noqa: E402
from services.router.providers.registry import load_registry, parse_registry  # noqa: E402
from services.router.routing_types import RouteRequest  # noqa: E402

SIDE = 1024


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def photo(side: int) -> bytes:
    return png(np.asarray(Image.fromarray(data.astronaut()).resize((side, side), Image.LANCZOS)))


def cpu_s(work, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.process_time()
        work()
        times.append(time.process_time() - started)
    return statistics.median(times)


STAGE_RUNS = {
    "preprocess (crop to face)": ("crop_to_subject", {"margin": 0.9, "size": SIDE}, SIDE),
    "remove_background (GrabCut)": ("remove_background", {"border": 0.08}, SIDE),
    "stylize": ("stylize", {"style": "studio"}, SIDE),
    "upscale lanczos (512 → 1024)": ("upscale", {"factor": 2, "method": "lanczos"}, SIDE // 2),
    "upscale nearest (512 → 1024)": ("upscale", {"factor": 2, "method": "nearest"}, SIDE // 2),
    "animate (8 frames, 320²)": ("animate", {"frames": 8, "frame_ms": 120, "width": 320, "height": 320}, SIDE),
    "postprocess": ("postprocess", {}, SIDE),
}


def instant_engine() -> RoutingEngine:
    """The shipped registry with no simulated latency."""
    raw = load_registry().model_dump(mode="json")
    for provider in raw["providers"].values():
        provider["local"] = (provider.get("local") or {}) | {"latency_s": 0.0, "failure_rate": 0.0}
    registry = parse_registry(raw)
    return RoutingEngine(registry, build_providers(registry))


def job_cpu_s(template: str, input_photo: bytes, repeat: int) -> float:
    engine, stages = instant_engine(), load_catalogue().pipeline(template)

    def one_job():
        request = RouteRequest(job_id=uuid.uuid4().hex, tenant_id="bench", tier="stable", template=template,
                               prompt="a portrait in a studio", seed=7, images_needed=1, candidates=1,
                               width=SIDE, height=SIDE)
        asyncio.run(run_pipeline(engine, replace(request, input=input_photo), stages=stages))

    return cpu_s(one_job, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    inputs = {side: photo(side) for side in (SIDE, SIDE // 2)}
    print(f"CPU seconds per stage, one {SIDE}×{SIDE} image (median of {args.repeat}):")
    for label, (operation, params, side) in STAGE_RUNS.items():
        seconds = cpu_s(partial(image_stages.OPERATIONS[operation], inputs[side], params, seed=7), args.repeat)
        print(f"  {label:32s} {seconds:7.3f} s")
    print(f"\nCPU seconds per job, one candidate at {SIDE}×{SIDE} through the engine:")
    generate_only = job_cpu_s("generic", inputs[SIDE], args.repeat)
    print(f"  {'generic (generate)':32s} {generate_only:7.3f} s  1.00×")
    for template in ("studio-headshot", "product-cutout", "motion"):
        seconds = job_cpu_s(template, inputs[SIDE], args.repeat)
        stages = " → ".join(s.capability for s in load_catalogue().pipeline(template))
        print(f"  {template + ' (' + stages + ')':32s} {seconds:7.3f} s  {seconds / generate_only:.2f}×")


if __name__ == "__main__":
    run_stoppable(main)
