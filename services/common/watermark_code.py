"""The watermark's payload and the carriers that hold it, without I/O (services/common/watermark.py
embeds and detects them).

* The message: the 48-bit mark id, then its CRC-24 (OpenPGP's polynomial): 72 bits. A detection
  counts only when the check holds, so a random reading passes once in 2^24 (about 6e-8).
* The code: a convolutional code of rate 1/2 and constraint length 7 (the generators 133 and 171,
  octal, of NASA's and 802.11's code), terminated by 6 zero bits: 156 coded bits, decoded by a
  soft-decision Viterbi search, which corrects the scattered errors a lossy copy leaves.
* The carriers: one tile of `layout.tile` x `layout.tile` samples, the sum of cosines and sines
  of the tile's own frequencies between `layout.low` and `layout.high` cycles a tile. Each
  frequency's cosine or sine is one carrier: a quarter of them form the pilot (known signs: what
  finds the tile's shift), the rest carry the coded bits, each bit on two or more carriers with
  signs of their own. Carriers of distinct frequencies stay apart through any blur or resampling
  (a filter scales each frequency; it mixes none), so no bit leaks into another.

A `Layout` is part of a mark's format: files delivered with one are read with the same one
(services/common/watermark.py keeps each layout it has delivered).
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

MARK_ID_BITS = 48
CHECK_BITS = 24
MESSAGE_BITS = MARK_ID_BITS + CHECK_BITS
CONSTRAINT = 7  # the code's constraint length: each coded pair depends on the last 7 message bits
GENERATORS = (0o133, 0o171)
CODED_BITS = (MESSAGE_BITS + CONSTRAINT - 1) * 2
PILOT_SHARE = 0.25


@dataclass(frozen=True, kw_only=True)
class Layout:
    """Where a mark's carriers are: a tile of `tile` samples a side, the frequencies between `low`
    and `high` cycles a tile, shuffled into pilot and data carriers by `seed`. `spread`: the data
    carriers are dealt to the coded bits in order of frequency, so that each bit has carriers low
    and high in the band (what a JPEG or a resize keeps, and what a textured picture does not
    drown); else in the shuffled order."""

    tile: int
    low: float
    high: float
    seed: int
    spread: bool = False


def crc24(bits: np.ndarray) -> np.ndarray:
    """The CRC-24 (polynomial 0x864CFB, initial value 0xB704CE) of a bit array, as 24 bits."""
    crc = 0xB704CE
    for bit in bits:
        top = (crc >> 23) & 1
        crc = (crc << 1) & 0xFFFFFF
        if top ^ int(bit):
            crc ^= 0x864CFB
    return np.array([(crc >> (23 - i)) & 1 for i in range(CHECK_BITS)], dtype=np.uint8)


def message(mark_id: int) -> np.ndarray:
    """The 72 message bits of a 48-bit mark id: the id, then its check."""
    assert 0 <= mark_id < 1 << MARK_ID_BITS
    identity = np.array([(mark_id >> (MARK_ID_BITS - 1 - i)) & 1 for i in range(MARK_ID_BITS)], dtype=np.uint8)
    return np.concatenate([identity, crc24(identity)])


def mark_id_of(bits: np.ndarray) -> int | None:
    """The mark id that 72 message bits carry, or None when their check does not hold."""
    identity = bits[:MARK_ID_BITS]
    if not np.array_equal(crc24(identity), bits[MARK_ID_BITS:]):
        return None
    return int("".join(str(int(bit)) for bit in identity), 2)


def _parity(value: int) -> int:
    return bin(value).count("1") & 1


def encode(bits: np.ndarray) -> np.ndarray:
    """The coded bits of a message: two a step, the register terminated by zeros."""
    state, coded = 0, []
    for bit in [*bits.tolist(), *[0] * (CONSTRAINT - 1)]:
        state = ((state << 1) | int(bit)) & ((1 << CONSTRAINT) - 1)
        coded += [_parity(state & GENERATORS[0]), _parity(state & GENERATORS[1])]
    return np.array(coded, dtype=np.uint8)


@dataclass(frozen=True)
class Trellis:
    """For each state the decoder can reach, its two predecessors and the coded pair (as +1 for
    bit 0, -1 for bit 1) that each transition emits."""

    previous: np.ndarray  # states x 2
    emitted: np.ndarray  # states x 2 x 2


@lru_cache(maxsize=1)
def trellis() -> Trellis:
    states = 1 << (CONSTRAINT - 1)
    previous = np.zeros((states, 2), dtype=np.int64)
    emitted = np.zeros((states, 2, 2))
    for following in range(states):
        for j in range(2):
            state = (following >> 1) | (j << (CONSTRAINT - 2))
            register = (state << 1) | (following & 1)
            previous[following, j] = state
            emitted[following, j] = [1 - 2 * _parity(register & generator) for generator in GENERATORS]
    return Trellis(previous, emitted)


def decode(soft: np.ndarray) -> np.ndarray:
    """The message most likely sent, given each coded bit's soft value (positive: bit 0, its size
    the confidence): Viterbi's search over the terminated code."""
    code = trellis()
    states = code.previous.shape[0]
    steps = len(soft) // 2
    metric = np.full(states, -np.inf)
    metric[0] = 0.0
    choices = np.zeros((steps, states), dtype=np.int64)
    pairs = soft.reshape(steps, 2)
    for step in range(steps):
        candidates = metric[code.previous] + code.emitted @ pairs[step]
        choices[step] = np.argmax(candidates, axis=1)
        metric = candidates[np.arange(states), choices[step]]
    state, bits = 0, []  # the code ends in state 0
    for step in range(steps - 1, -1, -1):
        bits.append(state & 1)
        state = code.previous[state, choices[step, state]]
    return np.array(bits[::-1][:MESSAGE_BITS], dtype=np.uint8)


# ---- the carriers ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Carriers:
    """The tile's carriers: each one's frequency (ky, kx) and part (0 cosine, 1 sine), its sign,
    and the coded bit it carries (-1: the pilot)."""

    ky: np.ndarray
    kx: np.ndarray
    part: np.ndarray
    signs: np.ndarray
    owner: np.ndarray

    @property
    def pilot(self) -> np.ndarray:
        return self.owner < 0


@lru_cache(maxsize=4)
def carriers(layout: Layout) -> Carriers:
    size = layout.tile
    frequencies = [(ky, kx) for ky in range(-size // 2 + 1, size // 2) for kx in range(size // 2)
                   if (kx > 0 or ky > 0) and layout.low <= np.hypot(ky, kx) <= layout.high]
    dims = [(ky, kx, part) for ky, kx in frequencies for part in (0, 1)]
    rng = np.random.default_rng(layout.seed)
    dims = [dims[i] for i in rng.permutation(len(dims))]
    signs = rng.choice([-1.0, 1.0], len(dims))
    pilots = int(len(dims) * PILOT_SHARE)
    owner = np.full(len(dims), -1)
    ky, kx, part = (np.array(column) for column in zip(*dims, strict=True))
    dealt = np.arange(len(dims) - pilots)
    if layout.spread:  # the n-th lowest data carrier to bit n mod CODED_BITS
        dealt = np.argsort(np.argsort(np.hypot(ky[pilots:], kx[pilots:]), kind="stable"), kind="stable")
    owner[pilots:] = dealt % CODED_BITS
    return Carriers(ky=ky, kx=kx, part=part, signs=signs, owner=owner)


def _tile(values: np.ndarray, layout: Layout) -> np.ndarray:
    """The sum of the carriers, each at its value: a spectrum with each cosine's value (a sine's
    times -i) at its frequency, taken back to the tile (the real part of its inverse transform)."""
    placed, size = carriers(layout), layout.tile
    spectrum = np.zeros((size, size), dtype=np.complex128)
    np.add.at(spectrum, (placed.ky % size, placed.kx), size * size * values * np.where(placed.part == 0, 1, -1j))
    tile = np.fft.ifft2(spectrum).real.astype(np.float32)
    tile /= np.sqrt(np.mean(tile * tile))
    return tile


@lru_cache(maxsize=64)
def tile_of(mark_id: int, layout: Layout) -> np.ndarray:
    """The tile that carries `mark_id` (unit RMS): the pilot plus the coded bits."""
    placed = carriers(layout)
    coded = encode(message(mark_id)).astype(np.float64)
    values = np.where(placed.pilot, placed.signs, placed.signs * (1 - 2 * coded[np.maximum(placed.owner, 0)]))
    tile = _tile(values, layout)
    tile.flags.writeable = False
    return tile


@lru_cache(maxsize=64)
def pilot_tile(layout: Layout, reach: tuple[float, float]) -> np.ndarray:
    """The pilot alone, its carriers within `reach` (cycles a tile, down and across)."""
    placed = carriers(layout)
    kept = placed.pilot & (np.abs(placed.ky) <= reach[0]) & (placed.kx <= reach[1])
    return _tile(np.where(kept, placed.signs, 0.0), layout)


def soft_bits(tile: np.ndarray, shift: np.ndarray, *, layout: Layout, reach: tuple[float, float]) -> np.ndarray:
    """Each coded bit's soft value in a tile read back, whose pilot was found `shift` (rows,
    columns; fractions allowed) from where it was written: every carrier is read at its frequency
    with the shift undone, signed, and summed into its bit. Carriers past `reach` (cycles a tile,
    down and across) are left out: an image smaller than the plane could not hold them, and they
    would add only noise."""
    placed, size = carriers(layout), layout.tile
    spectrum = np.fft.fft2(tile)
    at = spectrum[placed.ky % size, placed.kx] * np.exp(2j * np.pi * (placed.ky * shift[0] + placed.kx * shift[1]) / size)
    read = np.where(placed.part == 0, at.real, -at.imag) * placed.signs
    data = ~placed.pilot & (np.abs(placed.ky) <= reach[0]) & (placed.kx <= reach[1])
    return np.bincount(placed.owner[data], weights=read[data], minlength=CODED_BITS)
