"""The pictures bench/watermark.py marks, every one made here or shipped in an installed wheel
(nothing is downloaded): five kinds of what a catalogue or an ad generates, at any size.

* photo: scikit-image's and matplotlib's sample photographs (the grey ones as RGB), texture for
  the mark to hide in;
* flat: flat illustrations, half drawn here (a smooth two-colour gradient, flat shapes with
  crisp edges, thin outlines), half painted by the platform's own local provider (the pictures
  `make run` delivers: a gradient, shapes, lines and a patch of fine pattern);
* white, black: a product shot on a seamless sweep of pure white (255) or pure black (0): a shaded
  bottle or can with a label and a soft shadow (a reflection on black), most of the frame sweep;
* text: a text-heavy graphic: a coloured banner with a heading, then lines of small text on a
  light page.

`picture(kind, side, index)` is the `index`-th picture of a kind, its longer side `side` pixels,
the same every run.
"""

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from services.router.providers.local.painter import CandidateRange, LocalGenerator

KINDS = ("photo", "flat", "white", "black", "text")
Pixels = np.ndarray
WORDS = ("new spring collection free shipping on every order today only limited offer the quick brown fox"
         " jumps over a lazy dog sale ends sunday").split()


def photo_paths() -> list[Path]:
    import matplotlib
    import skimage

    skimage_data = Path(skimage.__file__).parent / "data"
    names = ["astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "motorcycle_left.png",
             "motorcycle_right.png", "retina.jpg", "rocket.jpg", "ihc.png", "camera.png", "moon.png", "brick.png",
             "grass.png", "gravel.png"]
    return [*(skimage_data / name for name in names), Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"]


def scaled(image: Image.Image, side: int) -> Pixels:
    """`image` with its longer side `side` pixels."""
    scale = side / max(image.size)
    return np.asarray(image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS))


def photograph(side: int, index: int) -> Pixels:
    paths = photo_paths()
    with Image.open(paths[index % len(paths)]) as opened:
        return scaled(opened.convert("RGB"), side)


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    red, green, blue = (int(c) for c in rng.integers(20, 236, 3))
    return red, green, blue


def drawn_illustration(side: int, rng: np.random.Generator) -> Pixels:
    """A gradient from one flat colour to another, shapes of flat colour, some outlined."""
    width, height = side, round(side * float(rng.choice([1.0, 0.75])))
    top, bottom = np.array(_colour(rng), float), np.array(_colour(rng), float)
    along = np.linspace(0, 1, height)[:, None, None]
    image = Image.fromarray(np.broadcast_to(top * (1 - along) + bottom * along, (height, width, 3)).round().astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(4, 9))):
        left, upper = rng.uniform(-0.1, 0.9) * width, rng.uniform(-0.1, 0.9) * height
        box = (left, upper, left + rng.uniform(0.1, 0.5) * width, upper + rng.uniform(0.1, 0.5) * height)
        outline = _colour(rng) if rng.random() < 0.4 else None
        shape = int(rng.integers(3))
        if shape == 2:
            corners = [(rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3])) for _ in range(int(rng.integers(3, 6)))]
            draw.polygon(corners, fill=_colour(rng), outline=outline)
        else:
            (draw.rectangle if shape == 0 else draw.ellipse)(box, fill=_colour(rng), outline=outline, width=max(1, side // 200))
    return np.asarray(image)


def painted_illustration(side: int, index: int) -> Pixels:
    """A painting of the platform's local provider, as `make run` delivers them."""
    [painting] = LocalGenerator(side, side, defect_rate=0.0).paint(CandidateRange(prompt=f"bench {index}", seed=index, count=1))
    with Image.open(io.BytesIO(painting.png)) as opened:
        return np.asarray(opened.convert("RGB"))


def illustration(side: int, index: int) -> Pixels:
    if index % 2:
        return painted_illustration(side, index)
    return drawn_illustration(side, np.random.default_rng([11, side, index]))


def product(side: int, index: int, *, background: int) -> Pixels:
    """A shaded bottle or can with a label, centred on a sweep of `background` (0 or 255), with
    its soft shadow (on white) or its faint reflection (on black)."""
    rng = np.random.default_rng([12, side, index, background])
    rows, cols = np.mgrid[:side, :side].astype(np.float32) / side
    sweep = np.full((side, side), background / 255, np.float32)
    centre, top, bottom, half = rng.uniform(0.4, 0.6), rng.uniform(0.15, 0.25), rng.uniform(0.75, 0.88), rng.uniform(0.12, 0.22)
    shadow = np.exp(-(((cols - centre) / (half * 1.6)) ** 2 + ((rows - bottom) / 0.03) ** 2))
    sweep = sweep * (1 - 0.35 * shadow) if background else sweep + 0.08 * shadow
    across = (cols - centre) / half
    body = (np.abs(across) <= 1) & (rows >= top) & (rows <= bottom)
    if rng.random() < 0.5:  # a bottle's neck
        body |= (np.abs(across) <= 0.35) & (rows >= top - 0.08) & (rows < top)
    shade = np.sqrt(np.clip(1 - across ** 2, 0, 1)) * 0.8 + 0.2
    highlight = np.exp(-((across + 0.45) / 0.12) ** 2) * 0.5
    colour = np.clip(np.array(_colour(rng), np.float32) / 255 * shade[..., None] + highlight[..., None], 0, 1)
    pixels = np.where(body[..., None], colour, sweep[..., None])
    image = Image.fromarray(np.clip(pixels * 255 + 0.5, 0, 255).astype(np.uint8))
    label_left, label_top = (centre - half * 0.7) * side, (top + (bottom - top) * 0.4) * side
    draw = ImageDraw.Draw(image)
    draw.rectangle((label_left, label_top, (centre + half * 0.7) * side, label_top + 0.12 * side), fill=(245, 240, 230))
    draw.text((label_left + side // 100, label_top + side // 100), "ACME", fill=(30, 30, 30),
              font=ImageFont.load_default(size=max(8, side // 30)))
    # A lens's softness on the edges; the sweep stays exactly 0 or 255.
    return np.asarray(image.filter(ImageFilter.GaussianBlur(0.6)))


def text_graphic(side: int, index: int) -> Pixels:
    """A banner with a heading over lines of small dark text on a light page."""
    rng = np.random.default_rng([13, side, index])
    width, height = side, round(side * 0.8) if index % 2 else side
    page = (250, 250, 247) if rng.random() < 0.7 else tuple(int(c) for c in rng.integers(215, 256, 3))
    image = Image.new("RGB", (width, height), page)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width, height * 0.16), fill=_colour(rng))
    heading = " ".join(rng.choice(WORDS, 3)).upper()
    draw.text((width * 0.05, height * 0.03), heading, fill=(255, 255, 255), font=ImageFont.load_default(size=max(10, side // 14)))
    small, line_height = ImageFont.load_default(size=max(8, side // 36)), side / 24
    line_top = height * 0.2
    while line_top < height * 0.92:
        draw.text((width * 0.05, line_top), " ".join(rng.choice(WORDS, 8)), fill=(25, 25, 30), font=small)
        line_top += line_height
    return np.asarray(image)


def picture(kind: str, side: int, index: int) -> Pixels:
    """The `index`-th picture of `kind`, its longer side `side` pixels."""
    if kind == "photo":
        return photograph(side, index)
    if kind == "flat":
        return illustration(side, index)
    if kind in ("white", "black"):
        return product(side, index, background=255 if kind == "white" else 0)
    assert kind == "text", kind
    return text_graphic(side, index)
