"""The watermark's payload and the carriers that hold it, without I/O (services/common/watermark.py
embeds and detects them).

* The message: the 48-bit mark id, then its CRC-24 (OpenPGP's polynomial): 72 bits. A detection
  counts only when the check holds, so a random reading passes once in 2^24 (about 6e-8).
* The code: a convolutional code of rate 1/2 and constraint length 7 (the generators 133 and 171,
  octal, of NASA's and 802.11's code), terminated by 6 zero bits: 156 coded bits, decoded by a
  soft-decision Viterbi search, which corrects the scattered errors a lossy copy leaves.
* The carriers: one tile of `TILE` x `TILE` samples, the sum of cosines and sines of the tile's
  own frequencies between `LOW` and `HIGH` cycles a tile (the band a resize to a quarter and a JPEG
  both keep). Each frequency's cosine or sine is one carrier: a quarter of them form the pilot
  (known signs: what finds the tile's shift), the rest carry the coded bits, each bit on two or
  three carriers with signs of their own. Carriers of distinct frequencies stay apart through any
  blur or resampling (a filter scales each frequency; it mixes none), so no bit leaks into another.
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
TILE = 32  # samples a side of the tile that carries the whole payload once
LOW, HIGH = 3.0, 14.0  # the carriers' band, in cycles a tile
PILOT_SHARE = 0.25
LAYOUT_SEED = 0x6E6C  # fixed: the carriers are part of the format


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


@dataclass(frozen=True)
class Carriers:
    """The tile's carriers: each one's frequency (ky, kx) and part (0 cosine, 1 sine), its sign,
    the coded bit it carries (-1: the pilot), and its pattern over the tile (carriers x TILE²)."""

    ky: np.ndarray
    kx: np.ndarray
    part: np.ndarray
    signs: np.ndarray
    owner: np.ndarray
    patterns: np.ndarray

    @property
    def pilot(self) -> np.ndarray:
        return self.owner < 0


@lru_cache(maxsize=1)
def carriers() -> Carriers:
    frequencies = [(ky, kx) for ky in range(-TILE // 2 + 1, TILE // 2) for kx in range(TILE // 2)
                   if (kx > 0 or ky > 0) and LOW <= np.hypot(ky, kx) <= HIGH]
    dims = [(ky, kx, part) for ky, kx in frequencies for part in (0, 1)]
    rng = np.random.default_rng(LAYOUT_SEED)
    dims = [dims[i] for i in rng.permutation(len(dims))]
    signs = rng.choice([-1.0, 1.0], len(dims))
    pilots = int(len(dims) * PILOT_SHARE)
    owner = np.full(len(dims), -1)
    owner[pilots:] = np.arange(len(dims) - pilots) % CODED_BITS
    ky, kx, part = (np.array(column) for column in zip(*dims, strict=True))
    yy, xx = np.mgrid[:TILE, :TILE]
    phase = 2 * np.pi * (ky[:, None, None] * yy + kx[:, None, None] * xx) / TILE
    patterns = np.where(part[:, None, None] == 0, np.cos(phase), np.sin(phase)).reshape(len(dims), -1)
    return Carriers(ky, kx, part, signs, owner, patterns.astype(np.float32))


def _tile(values: np.ndarray) -> np.ndarray:
    tile: np.ndarray = (values.astype(np.float32) @ carriers().patterns).reshape(TILE, TILE)
    tile /= np.sqrt(np.mean(tile * tile))
    return tile


@lru_cache(maxsize=64)
def tile_of(mark_id: int) -> np.ndarray:
    """The tile that carries `mark_id` (unit RMS): the pilot plus the coded bits."""
    layout = carriers()
    coded = encode(message(mark_id)).astype(np.float64)
    values = np.where(layout.pilot, layout.signs, layout.signs * (1 - 2 * coded[np.maximum(layout.owner, 0)]))
    tile = _tile(values)
    tile.flags.writeable = False
    return tile


@lru_cache(maxsize=32)
def pilot_tile(reach: tuple[float, float] = (HIGH, HIGH)) -> np.ndarray:
    """The pilot alone, its carriers within `reach` (cycles a tile, down and across)."""
    layout = carriers()
    kept = layout.pilot & (np.abs(layout.ky) <= reach[0]) & (layout.kx <= reach[1])
    return _tile(np.where(kept, layout.signs, 0.0))


def soft_bits(tile: np.ndarray, shift: np.ndarray, reach: tuple[float, float] = (HIGH, HIGH)) -> np.ndarray:
    """Each coded bit's soft value in a tile read back, whose pilot was found `shift` (rows,
    columns; fractions allowed) from where it was written: every carrier is read at its frequency
    with the shift undone, signed, and summed into its bit. Carriers past `reach` (cycles a tile,
    down and across) are left out: an image smaller than the plane could not hold them, and they
    would add only noise."""
    layout = carriers()
    spectrum = np.fft.fft2(tile)
    at = spectrum[layout.ky % TILE, layout.kx] * np.exp(2j * np.pi * (layout.ky * shift[0] + layout.kx * shift[1]) / TILE)
    read = np.where(layout.part == 0, at.real, -at.imag) * layout.signs
    data = ~layout.pilot & (np.abs(layout.ky) <= reach[0]) & (layout.kx <= reach[1])
    return np.bincount(layout.owner[data], weights=read[data], minlength=CODED_BITS)
