"""A product subject, as the local portrait model paints it: the product cut out of each photo
(the built-in background removal, image_stages.remove_background), placed on a style's backdrop
with a soft shadow under it, sized by the style's framing, under its light. A product has no
face, so no defect of a face is planted in it."""

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from services.router.providers import image_stages
from services.router.providers.local.portraits.faces import LocalWeights
from services.router.providers.local.portraits.scene import Look, PictureDraws, backdrop, lit

SIDE = 384
# The product's height as a share of the frame's, per framing.
HEIGHTS = {"close": 0.78, "shoulders": 0.62, "waist": 0.46}


def cutout_of(photo: bytes) -> Image.Image:
    """The product of a photo, its background transparent, cropped to it, at most `SIDE` a side."""
    cut = image_stages.remove_background(photo, {}, seed=0)
    image = Image.open(io.BytesIO(cut.data)).convert("RGBA")
    box = image.getchannel("A").getbbox() or (0, 0, image.width, image.height)
    image = image.crop(box)
    image.thumbnail((SIDE, SIDE), Image.Resampling.LANCZOS)
    return image


def product_weights(photos: list[bytes], trigger_word: str) -> LocalWeights:
    return LocalWeights(trigger_word=trigger_word, crops=(), donor="", products=tuple(cutout_of(photo) for photo in photos))


def paint_product(look: Look, take: PictureDraws, *, cutout: Image.Image) -> Image.Image:
    rng = take.rng
    canvas = backdrop(look, take)
    height = take.height * HEIGHTS[look.framing] * rng.uniform(0.9, 1.1)
    scale = height / cutout.height
    width = cutout.width * scale
    if width > take.width * 0.9:
        scale *= take.width * 0.9 / width
    product = cutout.resize((max(1, round(cutout.width * scale)), max(1, round(cutout.height * scale))),
                            Image.Resampling.LANCZOS)
    if rng.random() < 0.5:
        product = product.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    left = round(take.width / 2 - product.width / 2 + take.width * rng.uniform(-0.12, 0.12))
    top = round(take.height * 0.92 - product.height - take.height * rng.uniform(0.0, 0.06))
    shadow = Image.new("L", canvas.size, 0)
    ImageDraw.Draw(shadow).ellipse([left, top + product.height * 0.93, left + product.width,
                                    top + product.height * 1.05], fill=int(rng.uniform(90, 150)))
    shade = np.zeros((canvas.height, canvas.width, 3), np.uint8)
    canvas.paste(Image.fromarray(shade), (0, 0), shadow.filter(ImageFilter.GaussianBlur(product.width * 0.05)))
    canvas.paste(product, (left, top), product)
    return lit(canvas, look, take=take)
