"""Where the watermark's tiles lie in an image, without I/O (services/common/watermark.py).

The mark is a tile repeated over the image's luminance scaled to `SIDE` x `SIDE`, whatever the
image's size, so a resize that is not undone changes nothing the detector sees. What does move
the tiles is a crop (each tile larger, and shifted) or a rotation. The detector finds them again:

1. `whitened`: the plane less its local mean, divided by its local contrast, so the image's own
   content weighs little and a brightness or contrast change nothing at all;
2. `lattices`: the tiles repeat, so the plane's autocorrelation peaks at the vectors from one tile
   to the next (Kutter's self-reference; here on the spectrum whitened again, where the mark's
   harmonics stand out of the image's smooth spectrum). The strongest peaks near each axis are
   paired into candidate lattices, and each is refined from the peaks at its multiples;
3. `fitted_to_lines`: a lattice's carriers are lines in that spectrum, each where the lattice
   puts its frequency; the lattice is fitted to where a few hundred of them are found (Pereira and
   Pun's template, with the carriers as the template), far finer than one correlation peak: a
   tile of 64 samples after a crop repeats three times over the plane, and its one peak is off by
   a sample or more;
4. `fold`: every sample of the plane added into the tile at the position the lattice gives it,
   so that all the tiles' copies of a carrier sum into one;
5. `located`: the tile's pilot found in the folded tile by cyclic correlation, to a fraction of
   a sample: the tile's shift, and how far the peak stands above the correlation's spread.
"""

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image

from services.common.watermark_code import Layout, carriers, pilot_tile

SIDE = 256  # the normalized plane's side
CANDIDATES = 3  # peaks kept near each axis
# The lattice vectors looked for, in tiles: from 0.8 tile (an image grown a little) to 2.6 tiles
# (a crop to about 40 % of each side), and never past half the plane (a cyclic correlation's
# longest lag), within 15 degrees of their axis.
SHORTEST, LONGEST, MAX_ANGLE = 0.8, 2.6, 15.0


def box(plane: np.ndarray, radius: int, *, dtype: type = np.float64) -> np.ndarray:
    """The mean over a (2 radius + 1)² square around each sample (edges mirrored, the edge
    itself not repeated), in `dtype`: float64 for detection; float32 where the means only shape
    what is added to 8-bit pixels (the mark's mask: the same pixels). OpenCV's box filter: the
    same means as summed tables to 1e-10, in a third of their CPU (a delivered picture's mark
    draws two, a thumbnail's two more)."""
    size = 2 * radius + 1
    means: np.ndarray = cv2.boxFilter(np.asarray(plane, dtype=dtype), -1, (size, size), normalize=True,
                                      borderType=cv2.BORDER_REFLECT_101)
    return means


def normalized_luma(rgb: np.ndarray) -> np.ndarray:
    """The image's luminance (BT.601) scaled to SIDE x SIDE: averaged down, or interpolated up."""
    image = Image.fromarray(rgb).convert("L")
    resample = Image.Resampling.BOX if min(image.size) >= SIDE else Image.Resampling.BILINEAR
    return np.asarray(image.resize((SIDE, SIDE), resample), dtype=np.float32)


def whitened(plane: np.ndarray) -> np.ndarray:
    detail: np.ndarray = plane - box(plane, 1)
    detail /= np.sqrt(np.maximum(box(detail * detail, 3), 0.0)) + 0.3
    return detail


# ---- the lattice -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Lags:
    """Each autocorrelation lag as a signed vector (rows, columns), its length, and where a lattice
    vector near each axis may be."""

    rows: np.ndarray
    cols: np.ndarray
    near_x: np.ndarray
    near_y: np.ndarray


@lru_cache(maxsize=4)
def lags(tile: int) -> Lags:
    rows, cols = np.mgrid[:SIDE, :SIDE]
    rows, cols = np.where(rows > SIDE // 2, rows - SIDE, rows), np.where(cols > SIDE // 2, cols - SIDE, cols)
    length = np.hypot(rows, cols)
    ring = (length >= SHORTEST * tile) & (length <= min(LONGEST * tile, 0.45 * SIDE))
    near_x = ring & (cols > 0) & (np.abs(np.degrees(np.arctan2(rows, cols))) <= MAX_ANGLE)
    near_y = ring & (rows > 0) & (np.abs(np.degrees(np.arctan2(cols, rows))) <= MAX_ANGLE)
    return Lags(rows=rows, cols=cols, near_x=near_x, near_y=near_y)


def line_spectrum(plane: np.ndarray, *, radius: int) -> np.ndarray:
    """The plane's power spectrum whitened again, each frequency against the (2 radius + 1)² around
    it: periodic lines stand out, the image's smooth spectrum flattens. The radius stays under the
    spacing of the tiles' harmonics, or each line would be divided by its neighbours."""
    spectrum = np.abs(np.fft.fft2(plane)) ** 2
    down = sum(np.roll(spectrum, dy, 0) for dy in range(-radius, radius + 1))
    neighbours = sum(np.roll(down, dx, 1) for dx in range(-radius, radius + 1))
    whitened: np.ndarray = spectrum / (neighbours / (2 * radius + 1) ** 2 + 1e-9)
    return whitened


def autocorrelation(spectrum: np.ndarray) -> np.ndarray:
    """The autocorrelation of a plane, from its `line_spectrum`, 1 at lag 0."""
    correlation: np.ndarray = np.fft.ifft2(spectrum).real
    if correlation[0, 0] <= 0:  # a plane with nothing in it (a blank picture): no lattice to find
        return np.zeros_like(correlation)
    correlation /= correlation[0, 0]
    return correlation


def _at(correlation: np.ndarray, lag: np.ndarray) -> float:
    """The largest autocorrelation within one sample of a lag."""
    row, col = int(round(lag[0])), int(round(lag[1]))
    return float(max(correlation[(row + dy) % SIDE, (col + dx) % SIDE] for dy in (-1, 0, 1) for dx in (-1, 0, 1)))


def _peaks(correlation: np.ndarray, where: np.ndarray, *, tile: int) -> list[np.ndarray]:
    shape, found = lags(tile), []
    score = np.where(where, correlation, -np.inf)
    for _ in range(CANDIDATES):
        index = np.unravel_index(np.argmax(score), score.shape)
        if not np.isfinite(score[index]):
            break
        lag = np.array([shape.rows[index], shape.cols[index]], dtype=np.float64)
        found.append(_shortest(correlation, lag, shortest=SHORTEST * tile))
        score[(np.abs(shape.rows - lag[0]) <= 3) & (np.abs(shape.cols - lag[1]) <= 3)] = -np.inf
    return found


def _shortest(correlation: np.ndarray, lag: np.ndarray, *, shortest: float) -> np.ndarray:
    """The lag, or a third or half of it where that peaks too: a cyclic autocorrelation peaks as
    high at two tiles as at one."""
    top = _at(correlation, lag)
    for divisor in (3, 2):
        part = lag / divisor
        if np.hypot(*part) >= shortest and _at(correlation, part) >= 0.5 * top:
            return part
    return lag


def _subsample(correlation: np.ndarray, row: int, *, col: int) -> np.ndarray:
    """The peak at (row, col) of a cyclic correlation to a fraction of a sample, by a parabola
    through its neighbours."""
    rows, cols = correlation.shape

    def value(dy: int, dx: int) -> float:
        return float(correlation[(row + dy) % rows, (col + dx) % cols])

    centre, offsets = value(0, 0), []
    for before, after in ((value(-1, 0), value(1, 0)), (value(0, -1), value(0, 1))):
        curvature = 2 * (2 * centre - before - after)
        offsets.append(float(np.clip((after - before) / curvature, -0.5, 0.5)) if curvature > 0 else 0.0)
    return np.array([row + offsets[0], col + offsets[1]])


def _refined(correlation: np.ndarray, lag: np.ndarray) -> np.ndarray:
    """The lag fitted to the peaks at its multiples (k times the lag, for each k that fits): the
    error of one peak's position shrinks k times."""
    weighted, weights = np.zeros(2), 0.0
    for k in range(1, 8):
        guess = lag * k
        if np.hypot(*guess) > SIDE / 2 - 2:
            break
        row, col = int(round(guess[0])), int(round(guess[1]))
        _, dy, dx = max((correlation[(row + dy) % SIDE, (col + dx) % SIDE], dy, dx)
                        for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        weighted += k * _subsample(correlation, row + dy, col=col + dx)
        weights += k * k
        lag = weighted / weights
    return lag


def tile_map(along_x: np.ndarray, along_y: np.ndarray, *, tile: int) -> np.ndarray:
    """The linear map from a sample's position (row, column) to its tile position (row, column),
    for a lattice with vectors `along_x` and `along_y` (each as rows, columns) of tiles `tile`
    samples a side."""
    inverse = np.linalg.inv(np.array([[along_x[0], along_y[0]], [along_x[1], along_y[1]]]))
    return tile * np.array([inverse[1], inverse[0]])


IDENTITY = np.eye(2)


def lattices(correlation: np.ndarray, *, tile: int, keep: int = 2) -> list[np.ndarray]:
    """The `keep` likeliest maps to tiles of `tile` samples, best first, from a whitened plane's
    `autocorrelation`: pairs of peaks near each axis, scored by the peaks their lattice would also
    make (their sum and difference, their doubles)."""
    shape = lags(tile)
    pairs = [(sum(_at(correlation, v) for v in (a, b, a + b, a - b, 2 * a, 2 * b)), a, b)
             for a in _peaks(correlation, shape.near_x, tile=tile) for b in _peaks(correlation, shape.near_y, tile=tile)]
    pairs.sort(key=lambda pair: -pair[0])
    return [tile_map(_refined(correlation, a), _refined(correlation, b), tile=tile) for _, a, b in pairs[:keep]]


# The scan's steps: tile sizes from a picture grown a little to one cropped to about 45 % of a
# side, every 128th of a tile, and turns of up to 3 degrees either way, every degree: within a
# bin of every line up to the band's top, which `fitted_to_lines` then finds exactly.
SCANNED_SCALES = (0.85, 1.9, 1 / 128)  # in tiles: from, to, step
SCANNED_TURNS = (-3, -2, -1, 0, 1, 2, 3)  # degrees


def scanned_lattices(spectrum: np.ndarray, *, layout: Layout, reach: tuple[float, float], keep: int) -> list[np.ndarray]:
    """The `keep` likeliest tile maps of a uniformly scaled, slightly turned plane (a crop that
    keeps the picture's proportions, a turn), found by where the carriers' lines stand out in a
    `line_spectrum` together: each size and turn scored by the mean of the spectrum where it would
    put the layout's frequencies. Where the autocorrelation's peaks are the picture's own (a
    texture of blobs, a pattern), the carriers' hundreds of lines still point at the tiles."""
    frequencies = carrier_frequencies(layout, reach)
    start, stop, step = SCANNED_SCALES
    sizes = layout.tile * np.arange(start, stop, step)
    scored = []
    for degrees in SCANNED_TURNS:
        turn = _turn(degrees)
        bins = (frequencies @ turn.T)[None, :, :] * (SIDE / sizes)[:, None, None]
        values = spectrum[np.rint(bins[..., 0]).astype(np.int64) % SIDE, np.rint(bins[..., 1]).astype(np.int64) % SIDE]
        scores = values.mean(axis=1)
        scored += [(float(scores[i]), float(sizes[i]), degrees) for i in np.argsort(scores)[-keep:]]
    scored.sort(reverse=True)
    return [layout.tile / size * _turn(degrees).T for _, size, degrees in scored[:keep]]


def _turn(degrees: float) -> np.ndarray:
    angle = np.radians(degrees)
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def fitted_to_lines(spectrum: np.ndarray, mapping: np.ndarray, *, layout: Layout,
                    reach: tuple[float, float]) -> np.ndarray:
    """The tile map `mapping` fitted to the carriers' lines in a `line_spectrum`: each carrier's
    frequency within `reach` (cycles a tile) predicted where the map puts it, the strongest
    frequency within a bin of it taken, to a fraction of a bin, and the map that predicts them best
    found by least squares, each weighted by how far its line stands out. Twice: the low
    frequencies' lines, found first, bring the high ones within a bin."""
    frequencies = carrier_frequencies(layout, reach)
    for _ in range(FITTING_ROUNDS):
        predicted = frequencies @ mapping * (SIDE / layout.tile)  # rows, columns, in bins
        found, weight = _strongest_near(spectrum, predicted)
        weight = np.maximum(weight - 1.0, 0.0)  # a line, not the whitened spectrum's mean of 1
        weighted = frequencies * weight[:, None]
        normal = weighted.T @ frequencies
        # Too few lines, or all along one direction, fix no map: the one given stands.
        if np.count_nonzero(weight) < MIN_LINES or np.linalg.cond(normal) > 1e6:
            return mapping
        # found (bins) = frequencies @ mapping * SIDE / tile: least squares for mapping
        mapping = np.linalg.solve(normal, weighted.T @ found) * (layout.tile / SIDE)
    return mapping


FITTING_ROUNDS = 2
MIN_LINES = 8


@lru_cache(maxsize=16)
def carrier_frequencies(layout: Layout, reach: tuple[float, float]) -> np.ndarray:
    """The distinct frequencies (cycles a tile, rows and columns) of a layout's carriers within reach."""
    placed = carriers(layout)
    kept = (np.abs(placed.ky) <= reach[0]) & (placed.kx <= reach[1])
    frequencies: np.ndarray = np.unique(np.stack([placed.ky[kept], placed.kx[kept]], axis=1), axis=0).astype(np.float64)
    return frequencies


def _strongest_near(spectrum: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each predicted position (rows, columns, in bins), the strongest bin within one of it,
    to a fraction of a bin (a parabola through its neighbours), and its value."""
    rows, cols = np.rint(predicted[:, 0]).astype(np.int64), np.rint(predicted[:, 1]).astype(np.int64)
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    values = np.stack([spectrum[(rows + dy) % SIDE, (cols + dx) % SIDE] for dy, dx in offsets])
    best = np.argmax(values, axis=0)
    rows = rows + np.array([dy for dy, _ in offsets])[best]
    cols = cols + np.array([dx for _, dx in offsets])[best]

    def at(dy: int, dx: int) -> np.ndarray:
        found: np.ndarray = spectrum[(rows + dy) % SIDE, (cols + dx) % SIDE]
        return found

    centre = at(0, 0)
    shifts = []
    for before, after in ((at(-1, 0), at(1, 0)), (at(0, -1), at(0, 1))):
        curvature = 2 * (2 * centre - before - after)
        shifts.append(np.clip((after - before) / np.maximum(curvature, 1e-12), -0.5, 0.5))
    return np.stack([rows + shifts[0], cols + shifts[1]], axis=1), centre


# ---- folding and the pilot ---------------------------------------------------------------------


@lru_cache(maxsize=1)
def _positions() -> np.ndarray:
    # From the plane's centre: a lattice a little off drifts least over the plane.
    return np.mgrid[:SIDE, :SIDE].reshape(2, -1).astype(np.float64) - SIDE / 2


def fold(plane: np.ndarray, mapping: np.ndarray, *, tile: int) -> np.ndarray:
    """The plane's samples averaged into one tile of `tile` samples a side, each at the tile
    position `mapping` gives it."""
    if np.array_equal(mapping, IDENTITY):  # the tiles as written: whole tiles, no arithmetic
        whole: np.ndarray = plane.reshape(SIDE // tile, tile, SIDE // tile, tile).mean(axis=(0, 2))
        return whole
    tile_rows, tile_cols = np.rint(mapping @ _positions()).astype(np.int64) % tile
    index = tile_rows * tile + tile_cols
    sums = np.bincount(index, weights=plane.ravel(), minlength=tile * tile)
    counts = np.bincount(index, minlength=tile * tile)
    folded: np.ndarray = (sums / np.maximum(counts, 1)).reshape(tile, tile)
    return folded


@dataclass(frozen=True)
class PilotLocation:
    """Where the pilot is in a folded tile (rows, columns, to a fraction of a sample), and how far
    its correlation peak stands above the spread of the correlation over every shift (about 3 to
    4.5 on an unmarked image, where the highest of 1,024 values of noise is taken)."""

    shift: np.ndarray
    strength: float


def located(folded: np.ndarray, *, layout: Layout, reach: tuple[float, float]) -> PilotLocation:
    """The pilot of `layout` in a folded tile, correlated on its carriers within `reach` (cycles a tile)."""
    pilot = pilot_tile(layout, (round(reach[0] * 2) / 2, round(reach[1] * 2) / 2))
    correlation = np.fft.irfft2(np.fft.rfft2(folded) * np.conj(np.fft.rfft2(pilot)), s=folded.shape)
    row, col = np.unravel_index(np.argmax(correlation), correlation.shape)
    spread = float(correlation.std())
    strength = float((correlation[row, col] - correlation.mean()) / spread) if spread > 0 else 0.0
    return PilotLocation(_subsample(correlation, int(row), col=int(col)), strength)

