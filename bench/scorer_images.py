"""The images and clips bench/scorer.py scores: 1024x1024 JPEGs (quality 90) made from
scikit-image photographs (resized) and LocalGenerator paintings, degraded copies of them
(blur, noise, quality-5 JPEG, blown out, black), portraits, and the router's pan-and-zoom
clips of them."""

import cv2
import numpy as np
from skimage import data as photos

from services.router.providers.image_stages import animate
from services.router.providers.local.painter import CandidateRange, LocalGenerator

SIDE = 1024
PHOTOS = ("astronaut", "coffee", "chelsea", "camera", "rocket")
CLIP_SIDE = 384


def encode(rgb: np.ndarray, quality: int = 90) -> bytes:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    return cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def source_images() -> list[np.ndarray]:
    """RGB 1024×1024 sources: photos, paintings, and degraded copies of the photos."""
    sources = []
    for name in PHOTOS:
        image = getattr(photos, name)()
        rgb = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]
        sources.append(cv2.resize(rgb, (SIDE, SIDE), interpolation=cv2.INTER_LANCZOS4))
    generator = LocalGenerator(SIDE, SIDE, defect_rate=0.25)
    for candidate in generator.paint(CandidateRange(prompt="bench", seed=7, count=8)):
        sources.append(cv2.imdecode(np.frombuffer(candidate.png, np.uint8), cv2.IMREAD_COLOR_RGB))
    rng = np.random.default_rng(0)
    photo = sources[0]
    sources.append(cv2.GaussianBlur(photo, (0, 0), 4))
    sources.append(np.clip(photo + rng.normal(0, 30, photo.shape), 0, 255).astype(np.uint8))
    sources.append(np.clip(photo.astype(np.int32) * 2 + 160, 0, 255).astype(np.uint8))
    sources.append(np.zeros_like(photo))
    return sources


def bench_images(count: int) -> list[bytes]:
    sources = source_images()
    encoded = [encode(rgb) for rgb in sources] + [encode(sources[1], quality=5)]
    return [encoded[i % len(encoded)] for i in range(count)]


def portraits() -> list[bytes]:
    from matplotlib import cbook

    astronaut = photos.astronaut()
    grace = cv2.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), cv2.IMREAD_COLOR_RGB)
    edited = np.clip(astronaut.astype(np.float64) * 1.1 + 10, 0, 255).astype(np.uint8)
    return [encode(cv2.resize(rgb, (SIDE, SIDE), interpolation=cv2.INTER_LANCZOS4)) for rgb in (astronaut, grace, edited)]


def degraded(rgb: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Copies that fail Tier 1: blurred, noisy, blown out, black."""
    return [cv2.GaussianBlur(rgb, (0, 0), 6), np.clip(rgb + rng.normal(0, 40, rgb.shape), 0, 255).astype(np.uint8),
            np.clip(rgb.astype(np.int32) * 2 + 160, 0, 255).astype(np.uint8), np.zeros_like(rgb)]


def still_pools(rng: np.random.Generator) -> dict[str, tuple[list[bytes], list[bytes]]]:
    """(sound, defective) JPEGs per kind of still: 'scenes' and 'portraits'."""
    scenes = source_images()[: len(PHOTOS) + 8]  # the photographs and the paintings, no copies
    defects = [encode(copy) for rgb in scenes[:3] for copy in degraded(rgb, rng)] + [encode(scenes[1], quality=5)]
    from matplotlib import cbook

    astronaut = cv2.resize(photos.astronaut(), (SIDE, SIDE), interpolation=cv2.INTER_LANCZOS4)
    grace = cv2.resize(cv2.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), cv2.IMREAD_COLOR_RGB),
                       (SIDE, SIDE), interpolation=cv2.INTER_LANCZOS4)
    crop = cv2.resize(astronaut[40:900, 60:920], (SIDE, SIDE), interpolation=cv2.INTER_LANCZOS4)
    people = [astronaut, grace, crop, cv2.GaussianBlur(astronaut, (0, 0), 1.2), cv2.GaussianBlur(grace, (0, 0), 1.0),
              np.clip(astronaut.astype(np.float64) * 1.1 + 10, 0, 255).astype(np.uint8),
              cv2.resize(photos.chelsea(), (SIDE, SIDE)), cv2.resize(photos.coffee(), (SIDE, SIDE))]
    portraits = [encode(rgb) for rgb in people]
    portrait_defects = [encode(copy) for rgb in (astronaut, grace) for copy in degraded(rgb, rng)]
    return {"scenes": ([encode(rgb) for rgb in scenes], defects), "portraits": (portraits, portrait_defects)}


def clip_pool(rng: np.random.Generator) -> tuple[list[bytes], list[bytes]]:
    """(sound, defective) clips: pan-and-zoom animations of stills, and of degraded stills."""
    params = {"frames": 8, "width": CLIP_SIDE, "height": CLIP_SIDE, "zoom": 1.2}
    scenes = source_images()[: len(PHOTOS) + 8]
    sound = [animate(encode(rgb), params, seed=seed).data for seed, rgb in enumerate(scenes)]
    broken = [copy for rgb in scenes[:2] for copy in degraded(rgb, rng)]
    defective = [animate(encode(rgb), params, seed=seed).data for seed, rgb in enumerate(broken)]
    return sound, defective + [encode(cv2.resize(scenes[0], (CLIP_SIDE, CLIP_SIDE)))]  # a still is no clip
