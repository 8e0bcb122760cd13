"""Photos of one person made from one portrait, offline: the demo's subject (`make run`) and the
tests' use them as a customer's selfies. Each is another framing of the portrait (a crop of its
own, some mirrored), turned a few degrees, its colour and light shifted a little: different
pictures to the near-duplicate check (fingerprints dozens of bits apart), one face to the
detector, the same person to the face embedding (about 0.1 from their centroid, where another
person lies past 0.6).

The framings suit a head-and-shoulders portrait whose face sits in the upper middle, such as
scikit-image's astronaut (Eileen Collins, a NASA photograph in the public domain), which the
stack ships as `demo/portrait.jpg`.
"""

import io
from importlib import resources

from PIL import Image, ImageEnhance, ImageOps

# Crops as shares of the portrait's width and height: left, top, right, bottom.
FRAMINGS = ((0.0, 0.0, 1.0, 1.0), (0.117, 0.0, 0.898, 0.781), (0.195, 0.039, 0.781, 0.625),
            (0.039, 0.02, 0.742, 0.723), (0.254, 0.0, 0.762, 0.508), (0.0, 0.078, 0.703, 0.781),
            (0.156, 0.059, 0.859, 0.762), (0.293, 0.059, 0.684, 0.449))
SIDE = 384


def poses(portrait: Image.Image, count: int = len(FRAMINGS)) -> list[bytes]:
    """`count` (at most len(FRAMINGS)) JPEG photos of the portrait's person, each a picture of its own."""
    if not 1 <= count <= len(FRAMINGS):
        raise ValueError(f"between 1 and {len(FRAMINGS)} poses")
    rgb = portrait.convert("RGB")
    width, height = rgb.size
    photos = []
    for i, (left, top, right, bottom) in enumerate(FRAMINGS[:count]):
        pose = rgb.crop((round(left * width), round(top * height), round(right * width), round(bottom * height)))
        pose = pose.resize((SIDE, SIDE), Image.Resampling.LANCZOS)
        if i % 2:
            pose = ImageOps.mirror(pose)
        pose = ImageEnhance.Color(pose).enhance(0.8 + 0.08 * i)
        pose = ImageEnhance.Brightness(pose).enhance(0.9 + 0.03 * i)
        pose = pose.rotate((i - 4) * 2, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128))
        photos.append(jpeg(pose))
    return photos


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def demo_photograph(name: str) -> Image.Image:
    """One of the photographs the stack ships for its demo (`demo/README.md` says whose)."""
    with resources.files("genline_stack").joinpath("demo", name).open("rb") as file:
        image = Image.open(file)
        image.load()
    return image
