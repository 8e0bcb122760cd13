"""The invisible watermark, without I/O: a 48-bit mark id hidden in an image's luminance (or a
clip's frames), found again after the metadata is gone, the file recompressed, resized and not
restored, cropped, turned a little, or made brighter.

How it is written (`embed`): the luminance is scaled to a fixed `SIDE` x `SIDE` plane, whatever
the image's size; a tile that carries the payload once (services/common/watermark_code.py: the
id, a CRC-24, a convolutional code, on carriers of distinct frequencies) is repeated over that
plane, weighted by how much detail each place has to hide it in, scaled back to the image's size
and added to its red, green and blue alike. The mark is thus drawn at the image's own scale:
resizing the image resizes the mark with it, and the detector, which scales to the same plane,
sees the same tiles. (TrustMark's way of surviving resizes, arXiv 2311.18297, with no network:
the payload is a spread-spectrum tile, the synchronization its repetition.)

A `Scheme` is one version of the mark: its carriers, its strength and mask. `CURRENT` is what
delivery draws (tiles.2: 4 x 4 tiles of 64 samples, carriers of 6 to 16 cycles a tile, the
frequencies a JPEG 50, a WebP 80 and a resize to a quarter of a 512-pixel picture keep even where
it is flat); `SCHEMES` are every version delivered files carry, read newest first (tiles.1, the
first release's 8 x 8 tiles of 32 samples, carriers of 3 to 14 cycles, whose upper half those
edits wipe from flat pictures).

How it is read (`detect`): the image scaled to the same plane and whitened, the tiles found
(services/common/watermark_sync.py: where they were written, else the lattices the plane's
autocorrelation and a scan of the carriers' lines show, which a crop or a rotation moved, each
fitted to the lines), folded into one tile, its pilot located, and the bits read and decoded. A
detection names a mark id only when the pilot stands out (`MIN_STRENGTH`) and the CRC-24 holds: a
picture never marked passes both about once in 2^24 readings tried (a few per scheme and image),
which is the false-positive rate. A clip's frames are read together (`detect_frames`): the mark is
the same in each, the pictures are not.

`ALGORITHM` names the current scheme in a manifest's soft binding (`c2pa.soft-binding`); the
files delivered before any tiled mark carry `watermark_dwt`'s, which `POST /v1/verify` still
reads.
"""

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from services.common import watermark_code
from services.common.watermark_code import MARK_ID_BITS as MARK_ID_BITS
from services.common.watermark_code import Layout
from services.common.watermark_sync import (
    IDENTITY,
    SIDE,
    autocorrelation,
    box,
    fitted_to_lines,
    fold,
    lattices,
    line_spectrum,
    located,
    normalized_luma,
    scanned_lattices,
    whitened,
)


@dataclass(frozen=True, kw_only=True)
class Scheme:
    """One version of the mark: its carriers (`layout`), how strong it is drawn, and where.

    `strength`: luminance levels added where the mask is 1. The mask: the local detail (the RMS of
    the luminance less its 3x3 mean) over `mask_scale`, held between `mask_floor` and
    `mask_ceiling`: more where detail hides it, never nothing where the image is flat.
    `boost_below`, `boost_power`: a picture under `boost_below` pixels a side holds fewer samples
    of the mark, and not its highest carriers, so it is drawn stronger there, by
    (boost_below / side) ** boost_power, at most SMALL_BOOST times (a thumbnail, a poster).
    `lattice_radius`: the spectrum is whitened over (2r + 1)² frequencies to find the tiles' lattice,
    fewer than the tiles' harmonics are apart after a crop."""

    algorithm: str
    layout: Layout
    strength: float
    mask_scale: float
    mask_floor: float
    mask_ceiling: float
    boost_below: int
    boost_power: float
    lattice_radius: int

    @property
    def parameters(self) -> str:
        """The scheme as a manifest's soft binding describes it (`alg_params`)."""
        layout = self.layout
        return (f"{layout.tile}-sample tiles over the luminance scaled to {SIDE}x{SIDE}, carriers of {layout.low:g} to"
                f" {layout.high:g} cycles a tile; CRC-24; convolutional code 1/2, K=7")

    def size_boost(self, side: int) -> float:
        """How much stronger the mark is drawn on a picture whose shorter side is `side` pixels."""
        return float(min(SMALL_BOOST, max(1.0, self.boost_below / side) ** self.boost_power))


SMALL_BOOST = 2.0


# The mark delivered files carried from the tiled mark's first release: 32-sample tiles, carriers
# of 3 to 14 cycles a tile. Chosen on photographs (about 41.7 dB PSNR; every transformation
# bench/watermark.py tries read but a resize to a quarter followed by JPEG 50). A wider mask (0.5
# to 2.5) read no more marks at 2.5 dB less; none at all lost resizes to a quarter and crops on
# two photographs more. Kept to read the files delivered with it.
TILES_1 = Scheme(algorithm="com.genline.watermark.tiles.1", layout=Layout(tile=32, low=3.0, high=14.0, seed=0x6E6C),
                 strength=2.6, mask_scale=6.0, mask_floor=0.6, mask_ceiling=1.6, boost_below=256, boost_power=1.0,
                 lattice_radius=3)
# What delivery draws now. Chosen on bench/watermark.py's five kinds of picture at 256 to 2048
# pixels: tiles twice as large (4 x 4 on the plane) hold as many carriers in the band a JPEG 50,
# a WebP 80 and a resize to a quarter keep of a flat 512-pixel picture (6 to 16 cycles a tile, 24
# to 64 across the plane) as tiles.1 spread over 3 to 14 cycles of its smaller tiles, whose upper
# half those edits wipe where a picture is flat; each bit's carriers are dealt low and high in
# the band. Strength 2.4 keeps every mark of the 512-pixel pictures through those edits (2.1, as
# visible as tiles.1, lost a third of the product shots' marks to JPEG 50 and WebP 80); pictures
# under 512 pixels a side, which hold fewer samples of it, get up to sqrt(512 / side) more. Its
# band is where photographs' textures have more of their own energy than tiles.1's: the mask
# rises to 1.9 in texture (1.6 lost the crops and turns of grass and gravel; 1.9 costs 0.8 dB
# of PSNR on photographs, all of it in their texture, none on flat fields).
TILES_2 = Scheme(algorithm="com.genline.watermark.tiles.2",
                 layout=Layout(tile=64, low=6.0, high=16.0, seed=0x6E6D, spread=True),
                 strength=2.4, mask_scale=6.0, mask_floor=0.6, mask_ceiling=1.9, boost_below=512, boost_power=0.5,
                 lattice_radius=2)
CURRENT = TILES_2
SCHEMES = (CURRENT, TILES_1)  # what `detect` reads, the one delivered now first
ALGORITHM = CURRENT.algorithm
# Smaller images cannot hold the tile's frequencies: their highest would fold over.
MIN_SIDE = 96
# The pilot's correlation peak, in spreads above the mean, a reading must reach before its bits
# are decoded (an unmarked image reaches 3 to 4.5; a marked one 6 to 12 after most edits).
MIN_STRENGTH = 4.0
TRIED_LATTICES = 2


def mark_hex(mark_id: int) -> str:
    """A mark id as delivery records it and `POST /v1/verify` shows it: 12 hex digits."""
    return f"{mark_id:012x}"


def can_carry(width: int, height: int) -> bool:
    return min(width, height) >= MIN_SIDE


def mask(plane: np.ndarray, scheme: Scheme) -> np.ndarray:
    """How strongly each sample of the plane is marked (float32): its local detail over
    `mask_scale`, between `mask_floor` and `mask_ceiling`. In float32, in place where it can
    be: the same pixels once added and rounded as in float64 (every pixel of 96 to 832-pixel
    pictures compared), in a third of the CPU (0.8 -> 0.2 ms a picture)."""
    detail = plane - box(plane, 1, dtype=np.float32)
    weights = box(detail * detail, 2, dtype=np.float32)
    np.maximum(weights, 0.0, out=weights)
    np.sqrt(weights, out=weights)
    weights *= np.float32(1.0 / scheme.mask_scale)
    np.maximum(weights, np.float32(scheme.mask_floor), out=weights)
    np.minimum(weights, np.float32(scheme.mask_ceiling), out=weights)
    return weights


def embed(rgb: np.ndarray, mark_id: int, *, scheme: Scheme = CURRENT, boost: float = 1.0) -> np.ndarray:
    """`rgb` (H x W x 3, uint8) with `mark_id` hidden in its luminance, as `scheme` draws it,
    `boost` times as strong (a kind of file that takes more: a thumbnail, a clip's frames)."""
    height, width = rgb.shape[:2]
    assert can_carry(width, height), "image too small to carry a watermark"
    strength = scheme.strength * boost * scheme.size_boost(min(height, width))
    plane = normalized_luma(rgb)
    repeats = SIDE // scheme.layout.tile
    pattern = np.tile(watermark_code.tile_of(mark_id, scheme.layout), (repeats, repeats))
    residual = mask(plane, scheme)
    residual *= pattern * np.float32(strength)
    if min(width, height) >= SIDE:
        # Scaled up: OpenCV's bilinear is PIL's there, and its saturating add rounds as np.rint
        # would; the same pixels at 11 ms a megapixel instead of 27 (three passes fewer).
        scaled = cv2.resize(residual, (width, height), interpolation=cv2.INTER_LINEAR)
        return cv2.add(np.ascontiguousarray(rgb), cv2.merge([scaled, scaled, scaled]), dtype=cv2.CV_8U)
    # Scaled down in a side (a thumbnail): PIL's bilinear averages over the samples it drops.
    scaled = np.asarray(Image.fromarray(residual, "F").resize((width, height), Image.Resampling.BILINEAR))
    marked = rgb.astype(np.int16)
    marked += np.rint(scaled).astype(np.int16)[..., None]
    np.clip(marked, 0, 255, out=marked)
    return marked.astype(np.uint8)


@dataclass
class Embedding:
    """One mark id embedded, as the current scheme draws it, into every picture given (a still, a
    thumbnail, a clip's frames), counting the CPU it spent and the megapixels it marked: what
    delivery reports as the watermark's cost a megapixel. `boost` scales the strength (a clip's
    frames take more)."""

    mark_id: int
    cpu_s: float = 0.0
    megapixels: float = 0.0

    def __call__(self, rgb: np.ndarray, boost: float = 1.0) -> np.ndarray:
        started = time.process_time()
        marked = embed(rgb, self.mark_id, boost=boost)
        self.cpu_s += time.process_time() - started
        self.megapixels += rgb.shape[0] * rgb.shape[1] / 1e6
        return marked


@dataclass(frozen=True)
class Detection:
    """What `detect` found: the mark id (None when no reading's check held), how strongly the
    pilot stood out (`strength`; `confidence` maps it from 0, unmarked, to 1, clearly marked), and
    the 72 message bits of the best reading (the id, then its check)."""

    mark_id: int | None
    strength: float
    bits: tuple[int, ...] = ()

    @property
    def confidence(self) -> float:
        return round(float(np.clip((self.strength - MIN_STRENGTH) / 6.0, 0.0, 1.0)), 4)


NOTHING = Detection(None, 0.0)


def reach(height: int, width: int, *, tile: int) -> tuple[float, float]:
    """The highest carrier frequencies (cycles a tile of `tile` samples, down and across) an image
    of this size holds: nine tenths of its Nyquist frequency, in the plane's terms; all of them
    from SIDE up."""
    return tuple(0.45 * tile * min(1.0, side / SIDE) for side in (height, width))  # type: ignore[return-value]


@dataclass(frozen=True)
class Reading:
    """A whitened SIDE x SIDE plane to read marks from, and the image's size (what carriers it can
    hold). Its line spectra, once a lattice is looked for, are kept for every scheme that reads it."""

    plane: np.ndarray
    shape: tuple[int, int]
    spectra: dict[int, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    def spectrum(self, radius: int) -> np.ndarray:
        if radius not in self.spectra:
            self.spectra[radius] = line_spectrum(self.plane, radius=radius)
        return self.spectra[radius]


def _reading(plane: np.ndarray, mapping: np.ndarray, *, scheme: Scheme, within: tuple[float, float]) -> Detection:
    """The plane folded by one tile map, its pilot located and, where it stands out, its bits decoded."""
    layout = scheme.layout
    tile = fold(plane, mapping, tile=layout.tile)
    found = located(tile, layout=layout, reach=within)
    if found.strength < MIN_STRENGTH:
        return Detection(None, found.strength)
    bits = watermark_code.decode(watermark_code.soft_bits(tile, found.shift, layout=layout, reach=within))
    return Detection(watermark_code.mark_id_of(bits), found.strength, tuple(int(b) for b in bits))


def read_scheme(reading: Reading, scheme: Scheme) -> Detection:
    """The mark `scheme` draws, read from a plane: where the tiles were written, then, failing
    that, along the likeliest lattices its autocorrelation shows (a crop, a rotation)."""
    layout = scheme.layout
    within = reach(*reading.shape, tile=layout.tile)
    best = _reading(reading.plane, IDENTITY, scheme=scheme, within=within)
    if best.mark_id is not None:
        return best
    spectrum = reading.spectrum(scheme.lattice_radius)
    candidates = [*lattices(autocorrelation(spectrum), tile=layout.tile, keep=TRIED_LATTICES),
                  *scanned_lattices(spectrum, layout=layout, reach=within, keep=TRIED_LATTICES)]
    for mapping in candidates:
        fitted = fitted_to_lines(spectrum, mapping, layout=layout, reach=within)
        found = _reading(reading.plane, fitted, scheme=scheme, within=within)
        if found.mark_id is not None:
            return found
        best = max(best, found, key=lambda detection: detection.strength)
    return best


def detect_plane(reading: Reading) -> Detection:
    """The mark in a reading, by every scheme delivered, the current one first."""
    best = NOTHING
    for scheme in SCHEMES:
        found = read_scheme(reading, scheme)
        if found.mark_id is not None:
            return found
        best = max(best, found, key=lambda detection: detection.strength)
    return best


def detect(rgb: np.ndarray) -> Detection:
    """The mark in `rgb` (H x W x 3, uint8), if any."""
    if not can_carry(rgb.shape[1], rgb.shape[0]):
        return NOTHING
    return detect_plane(Reading(whitened(normalized_luma(rgb)), rgb.shape[:2]))


def detect_frames(frames: Iterable[np.ndarray]) -> Detection:
    """The mark of a clip (or an animated image), read from its frames together: their whitened
    planes are averaged, so the mark, the same in each, adds up and the pictures do not."""
    pictures = [rgb for rgb in frames if can_carry(rgb.shape[1], rgb.shape[0])]
    if not pictures:
        return NOTHING
    planes = [whitened(normalized_luma(rgb)) for rgb in pictures]
    return detect_plane(Reading(np.mean(planes, axis=0), pictures[0].shape[:2]))


def message_bits(mark_id: int) -> tuple[int, ...]:
    """The 72 message bits written for a mark id, as `Detection.bits` reads them back."""
    return tuple(int(bit) for bit in watermark_code.message(mark_id))
