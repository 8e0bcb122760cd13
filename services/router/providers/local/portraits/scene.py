"""A style's scene, painted around the heads placed in it: the backdrop, the wardrobe, the
light and the framing a style's parameters name (DESIGN.md §13):

* backdrop, wardrobe: a CSS colour name or `#rrggbb` (anything Pillow's ImageColor reads);
* light: soft | window | studio | dramatic | golden — a direction, a strength, a tint;
* framing: close | shoulders | waist — how large the face is in the frame.

Every picture of a style varies (`PictureDraws`): where the head sits and how large, its tilt and
mirror, the backdrop's gradient and the soft lights behind it, the side the light comes
from; so two candidates of one style are not near-duplicates of each other.
"""

import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFilter

from services.router.providers.local.portraits.faces import LIFT, SIDE, SPAN, FaceCrop

# Face width as a share of the frame's shorter side, and the face centre's height, per framing.
FRAMINGS = {"close": (0.34, 0.40), "shoulders": (0.25, 0.38), "waist": (0.18, 0.33)}
# Side light's strength, vignette, overall gain and tint (R, G, B), per light.
LIGHTS = {
    "soft": (0.12, 0.10, 1.02, (1.0, 1.0, 1.0)),
    "window": (0.35, 0.12, 1.0, (0.98, 1.0, 1.04)),
    "studio": (0.08, 0.18, 1.05, (1.0, 1.0, 1.0)),
    "dramatic": (0.48, 0.35, 0.95, (1.0, 0.98, 0.97)),
    "golden": (0.22, 0.15, 1.03, (1.08, 0.99, 0.84)),
}
DEFAULT_BACKDROP = "#5a6e8c"
DEFAULT_WARDROBE = "#2b2d38"
# The crop's face width and centre, in crop pixels.
CROP_FACE = SIDE / SPAN
CROP_CENTRE = (SIDE / 2, SIDE / 2 + LIFT * CROP_FACE)


@dataclass(frozen=True, kw_only=True)
class Look:
    """A style's parameters, read: colours as RGB, the light and the framing by name."""

    backdrop: tuple[int, int, int]
    wardrobe: tuple[int, int, int]
    light: str
    framing: str

    @classmethod
    def of(cls, params: dict[str, object]) -> "Look":
        light, framing = str(params.get("light", "soft")), str(params.get("framing", "shoulders"))
        return cls(backdrop=_colour(params.get("backdrop"), DEFAULT_BACKDROP),
                   wardrobe=_colour(params.get("wardrobe"), DEFAULT_WARDROBE),
                   light=light if light in LIGHTS else "soft", framing=framing if framing in FRAMINGS else "shoulders")


def _colour(value: object, default: str) -> tuple[int, int, int]:
    try:
        red, green, blue = ImageColor.getrgb(str(value) if value else default)[:3]
    except ValueError:
        red, green, blue = ImageColor.getrgb(default)[:3]
    return red, green, blue


@dataclass(frozen=True)
class PictureDraws:
    """One picture's own draws: the random stream every variation comes from, and its size."""

    rng: np.random.Generator
    width: int
    height: int


@dataclass(frozen=True, kw_only=True)
class Head:
    """A head to place: its crop, its centre in the frame and its face width, in frame pixels."""

    crop: FaceCrop
    x: float
    y: float
    face_width: float
    tilt_deg: float = 0.0
    mirrored: bool = False


def heads_for(look: Look, take: PictureDraws, *, crops: list[FaceCrop]) -> list[Head]:
    """One head per crop, side by side (one crop: the subject alone), sized by the framing."""
    rng, short = take.rng, min(take.width, take.height)
    share, height = FRAMINGS[look.framing]
    if len(crops) > 1:
        share = max(0.2, share * 0.85)  # two people stand a little further back, still detectable
    face_width = short * share * rng.uniform(0.88, 1.12)
    # Alone: left of centre, centred or right of it; two people side by side.
    slots = [float(rng.choice([0.36, 0.5, 0.64]))] if len(crops) == 1 else \
        [0.28 + 0.44 * n / (len(crops) - 1) for n in range(len(crops))]
    return [Head(crop=crop, x=take.width * (slot + rng.uniform(-0.08, 0.08) / len(crops)),
                 y=take.height * (height + rng.uniform(-0.04, 0.04)), face_width=face_width, tilt_deg=float(rng.uniform(-4, 4)),
                 mirrored=bool(rng.random() < 0.5)) for crop, slot in zip(crops, slots)]


def paint_scene(look: Look, take: PictureDraws, *, heads: list[Head]) -> np.ndarray:
    """The backdrop, each head's body in the wardrobe's colour and the head itself, under the
    light: (H, W, 3) float32 RGB, 0 to 255, for the camera's finish to work on."""
    canvas = backdrop(look, take)
    for head in heads:
        _body(canvas, Shot(look, take), head=head)
    for head in heads:
        _paste_head(canvas, head)
    return lit_pixels(canvas, look, take=take)


def backdrop(look: Look, take: PictureDraws) -> Image.Image:
    """A gradient of the backdrop's colour with a few soft lights, painted small and enlarged."""
    rng = take.rng
    small_w, small_h = max(8, take.width // 4), max(8, take.height // 4)
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:small_h, 0:small_w].astype(np.float32)
    along = xs / small_w * math.cos(angle) + ys / small_h * math.sin(angle)
    along = (along - along.min()) / max(float(along.max() - along.min()), 1e-6)
    # Darker towards one side, never past the colour (a white backdrop keeps its falloff).
    gain = 1.0 - rng.uniform(0.0, 0.15) - along * rng.uniform(0.3, 0.5)
    pixels = np.array(look.backdrop, dtype=np.float32)[None, None, :] * gain[:, :, None]
    _panel(pixels, rng, look=look)
    for _ in range(int(rng.integers(2, 6))):
        cx, cy = rng.uniform(0, small_w), rng.uniform(0, small_h)
        radius = rng.uniform(0.1, 0.35) * small_w
        glow = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * radius ** 2)) * rng.uniform(0.1, 0.3)
        pixels += 255 * glow[:, :, None]
    small = np.clip(pixels, 0, 255).astype(np.uint8)
    return Image.fromarray(cv2.resize(small, (take.width, take.height), interpolation=cv2.INTER_LINEAR))


def _panel(pixels: np.ndarray, rng: np.random.Generator, *, look: Look) -> None:
    """A broad band of light or shade across the backdrop (a window's light, a wall's edge), in place."""
    height, width, _ = pixels.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    offset = rng.uniform(0.2, 0.8) * (width * abs(math.cos(angle)) + height * abs(math.sin(angle)))
    distance = xs * math.cos(angle) + ys * math.sin(angle) - offset
    band = 1 / (1 + np.exp(-distance / (0.04 * width)))
    strength = rng.uniform(0.12, 0.25) * (1 if rng.random() < 0.5 else -1)
    pixels *= 1 + strength * band[:, :, None]


@dataclass(frozen=True)
class Shot:
    """The look a picture is painted in and its own draws."""

    look: Look
    take: PictureDraws


def _body(canvas: Image.Image, shot: Shot, *, head: Head) -> None:
    """Shoulders and chest below the head: a rounded shape in the wardrobe's colour, shaded
    downwards, its edge feathered; drawn in the box it covers, not the whole frame."""
    look, fw, rng = shot.look, head.face_width, shot.take.rng
    half = fw * rng.uniform(1.35, 1.85)
    turn = fw * rng.uniform(-0.45, 0.45)  # the shoulders turned a little one way or the other
    top = head.y + 0.7 * fw
    feather = max(1.0, fw * 0.03)
    margin = math.ceil(3 * feather) + 1
    box = (max(0, math.floor(head.x + turn - half) - margin), max(0, math.floor(top) - margin),
           min(canvas.width, math.ceil(head.x + turn + half) + margin + 1), canvas.height)
    if box[0] >= box[2] or box[1] >= box[3]:
        return
    width, height = box[2] - box[0], box[3] - box[1]
    shape = Image.new("L", (width, height), 0)
    ImageDraw.Draw(shape).rounded_rectangle([head.x + turn - half - box[0], top - box[1], head.x + turn + half - box[0],
                                             top + 4 * half - box[1]], radius=0.65 * half, fill=255)
    shade = np.linspace(1.1, 0.7, canvas.height, dtype=np.float32)[box[1]:, None, None]
    cloth = np.clip(np.array(look.wardrobe, dtype=np.float32)[None, None, :] * shade, 0, 255).astype(np.uint8)
    cloth_image = Image.fromarray(np.ascontiguousarray(np.broadcast_to(cloth, (height, width, 3))))
    canvas.paste(cloth_image, box[:2], shape.filter(ImageFilter.GaussianBlur(feather)))


def _paste_head(canvas: Image.Image, head: Head) -> None:
    """The crop scaled so its face is `face_width` wide, tilted and mirrored, pasted through a
    soft mask of the head, hair and neck, its face centre on the head's place (one affine
    warp each for the crop and its mask, in OpenCV)."""
    scale = head.face_width / CROP_FACE
    image, mask = np.asarray(head.crop.image), np.asarray(_head_mask())
    if head.mirrored:
        image, mask = image[:, ::-1], mask[:, ::-1]
    side = max(8, round(SIDE * scale))
    # Pillow's rotate turns counter-clockwise about the centre of the resized crop.
    matrix = cv2.getRotationMatrix2D(((side - 1) / 2, (side - 1) / 2), head.tilt_deg, 1.0) @ np.array(
        [[side / SIDE, 0, 0.5 * side / SIDE - 0.5], [0, side / SIDE, 0.5 * side / SIDE - 0.5], [0, 0, 1]])
    warped = [Image.fromarray(cv2.warpAffine(np.ascontiguousarray(plane), matrix, (side, side), flags=cv2.INTER_LINEAR))
              for plane in (image, mask)]
    left = round(head.x - CROP_CENTRE[0] * scale)
    top = round(head.y - CROP_CENTRE[1] * scale)
    canvas.paste(warped[0], (left, top), warped[1])


_MASK: list[Image.Image] = []


def _head_mask() -> Image.Image:
    """Head and hair as an ellipse above the face centre, the neck below it, feathered."""
    if not _MASK:
        unit, (cx, cy) = CROP_FACE, CROP_CENTRE
        mask = Image.new("L", (SIDE, SIDE), 0)
        draw = ImageDraw.Draw(mask)
        draw.ellipse([cx - 0.74 * unit, cy - 1.12 * unit, cx + 0.74 * unit, cy + 0.78 * unit], fill=255)
        draw.rectangle([cx - 0.3 * unit, cy + 0.3 * unit, cx + 0.3 * unit, cy + 0.78 * unit], fill=255)
        _MASK.append(mask.filter(ImageFilter.GaussianBlur(unit * 0.06)))
    return _MASK[0]


def lit(canvas: Image.Image, look: Look, *, take: PictureDraws) -> Image.Image:
    """The canvas under the light (`lit_pixels`), as an image."""
    return Image.fromarray(lit_pixels(canvas, look, take=take).astype(np.uint8))


def lit_pixels(canvas: Image.Image, look: Look, *, take: PictureDraws) -> np.ndarray:
    """The light: from one side (its strength), a vignette, a gain and a tint; (H, W, 3)
    float32, clipped to 0..255, not yet rounded."""
    side, vignette, gain, tint = LIGHTS[look.light]
    direction = 1.0 if take.rng.random() < 0.5 else -1.0
    xs = np.linspace(-1, 1, take.width, dtype=np.float32)[None, :]
    ys = np.linspace(-1, 1, take.height, dtype=np.float32)[:, None]
    field = gain * (1 + side * direction * xs) * (1 - vignette * (xs ** 2 + ys ** 2) / 2)
    pixels = np.asarray(canvas, dtype=np.float32)
    pixels *= field[:, :, None]
    pixels *= np.array(tint, dtype=np.float32)
    return np.clip(pixels, 0, 255, out=pixels)
