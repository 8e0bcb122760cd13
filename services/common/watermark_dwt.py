"""The watermark delivered files carried before the tiled one (services/common/watermark.py),
without I/O: kept so that `POST /v1/verify` still reads the files delivered with it, and as the
baseline `bench/watermark.py` measures. A 64-bit payload (a 48-bit mark id and a 16-bit check)
hidden in an image's colour; it survives recompression but not a resize that is not undone.

The method (DWT-DCT-SVD, the scheme of the `invisible-watermark` package, written here on
numpy alone: that package's wheel pulls torch and a second OpenCV):

1. the image's U chroma plane (BT.601), where the eye is least sensitive;
2. one level of the Haar wavelet transform, keeping the low band (LL): what JPEG and WebP
   keep best;
3. LL cut into 4x4 blocks, each through an orthonormal 2-D DCT, and each DCT block's largest
   singular value quantized to one of two lattices (`scale` apart) that say bit 0 or 1.

Block (row, column) of LL carries bit `(row % 8) * 8 + column % 8`: the 64 bits tile the
image, so every bit is repeated in every 8x8 tile of blocks and read back by a vote. How far
more blocks agree with their bit's vote than chance would make agree is the detection's
confidence: about 0 on an unmarked image, near 1 on a marked one. A detection also needs the 16-bit check to
hold (the weakest few votes may be flipped to make it hold), and a crop that moves the block
grid is found by trying the grid's 64 alignments.

`dwtDct` (the same without the SVD, quantizing one DCT coefficient) is kept for
`bench/watermark.py`, which measures both.
"""

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

Method = Literal["dwtDctSvd", "dwtDct"]
PAYLOAD_BITS = 64
MARK_ID_BITS = 48
TILE = 8  # blocks per side of the tile that carries the 64 bits once
BLOCK = 4  # LL coefficients per side of a block
CELL = 2 * BLOCK  # pixels per side of a block (the DWT halves the image)
# The lattice's step in each method: chosen on bench/watermark.py's figures (48 keeps every
# bit through JPEG 75 at about 40 dB PSNR; 36 lost some).
SCALES: dict[str, float] = {"dwtDctSvd": 48.0, "dwtDct": 36.0}
# The grid's alignment is chosen on a window of at most this many pixels a side.
ALIGNMENT_WINDOW = 256
# A detection below this confidence is no detection, whatever its check says.
MIN_CONFIDENCE = 0.25
MIN_SIDE = TILE * CELL  # smaller images cannot carry the whole payload
# Detection also tries the read bits with any of this many weakest votes flipped: 16 tries
# (times the tile's 64 shifts) against a 16-bit check, behind the confidence gate.
WEAK_BITS = 4


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    matrix: np.ndarray = np.sqrt(2 / n) * np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n))
    matrix[0] /= np.sqrt(2)
    return matrix


DCT = _dct_matrix(BLOCK)


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of `data`."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def payload_bits(mark_id: int) -> np.ndarray:
    """The 64 bits carried for `mark_id` (48 bits): the id, then its CRC-16."""
    assert 0 <= mark_id < 1 << MARK_ID_BITS
    identity = mark_id.to_bytes(MARK_ID_BITS // 8, "big")
    word = identity + crc16(identity).to_bytes(2, "big")
    return np.unpackbits(np.frombuffer(word, dtype=np.uint8)).astype(np.float64)


def mark_id_of(bits: np.ndarray) -> int | None:
    """The mark id the 64 bits carry, or None when their check does not hold."""
    word = np.packbits(bits.astype(np.uint8)).tobytes()
    identity, check = word[:MARK_ID_BITS // 8], int.from_bytes(word[MARK_ID_BITS // 8:], "big")
    return int.from_bytes(identity, "big") if crc16(identity) == check else None


# ---- colour and transforms --------------------------------------------------------------------


def _to_yuv(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return np.stack([y, 0.492 * (b - y), 0.877 * (r - y)], axis=-1)


def _to_rgb(yuv: np.ndarray) -> np.ndarray:
    y, u, v = yuv[..., 0], yuv[..., 1], yuv[..., 2]
    b = y + u / 0.492
    r = y + v / 0.877
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return np.clip(np.rint(np.stack([r, g, b], axis=-1)), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class SubBands:
    """A plane's one-level Haar wavelet transform: its approximation (`ll`) and its details."""

    ll: np.ndarray
    lh: np.ndarray
    hl: np.ndarray
    hh: np.ndarray


def _haar(plane: np.ndarray) -> SubBands:
    a, b, c, d = plane[0::2, 0::2], plane[0::2, 1::2], plane[1::2, 0::2], plane[1::2, 1::2]
    return SubBands((a + b + c + d) / 2, (a - b + c - d) / 2, (a + b - c - d) / 2, (a - b - c + d) / 2)


def _inverse_haar(bands: SubBands) -> np.ndarray:
    ll, lh, hl, hh = bands.ll, bands.lh, bands.hl, bands.hh
    plane = np.empty((ll.shape[0] * 2, ll.shape[1] * 2))
    plane[0::2, 0::2] = (ll + lh + hl + hh) / 2
    plane[0::2, 1::2] = (ll - lh + hl - hh) / 2
    plane[1::2, 0::2] = (ll + lh - hl - hh) / 2
    plane[1::2, 1::2] = (ll - lh - hl + hh) / 2
    return plane


def _blocks(ll: np.ndarray) -> np.ndarray:
    rows, cols = ll.shape[0] // BLOCK, ll.shape[1] // BLOCK
    return ll.reshape(rows, BLOCK, cols, BLOCK).transpose(0, 2, 1, 3)


def _unblocks(blocks: np.ndarray) -> np.ndarray:
    rows, cols = blocks.shape[:2]
    return blocks.transpose(0, 2, 1, 3).reshape(rows * BLOCK, cols * BLOCK)


def _bit_index(rows: int, cols: int) -> np.ndarray:
    r, c = np.meshgrid(np.arange(rows) % TILE, np.arange(cols) % TILE, indexing="ij")
    return r * TILE + c


def _carrier(dct_blocks: np.ndarray, method: Method) -> np.ndarray:
    """The value of each block that carries its bit."""
    if method == "dwtDctSvd":  # the largest singular value, from the Gram matrix's eigenvalues (faster than svd)
        gram = np.swapaxes(dct_blocks, -1, -2) @ dct_blocks
        return np.sqrt(np.maximum(np.linalg.eigvalsh(gram)[..., -1], 0.0))
    return dct_blocks[..., 1, 1]


def _with_carrier(dct_blocks: np.ndarray, values: np.ndarray, method: Method) -> np.ndarray:
    if method == "dwtDctSvd":
        u, s, vt = np.linalg.svd(dct_blocks)
        s[..., 0] = values
        rebuilt: np.ndarray = u @ (s[..., :, None] * vt)
        return rebuilt
    changed = dct_blocks.copy()
    changed[..., 1, 1] = values
    return changed


# ---- embedding and detection -------------------------------------------------------------------


def can_carry(width: int, height: int) -> bool:
    return min(width, height) >= MIN_SIDE


def embed(rgb: np.ndarray, mark_id: int, method: Method = "dwtDctSvd") -> np.ndarray:
    """`rgb` (H x W x 3, uint8) with `mark_id` hidden in it; pixels past the last whole block
    of 8 are left as they are."""
    height, width = (rgb.shape[0] // CELL) * CELL, (rgb.shape[1] // CELL) * CELL
    assert can_carry(width, height), "image too small to carry a watermark"
    yuv = _to_yuv(rgb)
    bands = _haar(yuv[:height, :width, 1])
    dct = DCT @ _blocks(bands.ll) @ DCT.T
    bits = payload_bits(mark_id)[_bit_index(*dct.shape[:2])]
    scale = SCALES[method]
    # Each value onto the lattice of its bit: a quarter of the way into its cell for 0,
    # three quarters for 1, so a change of up to a quarter of `scale` still reads right.
    quantized = (np.floor(_carrier(dct, method) / scale) + 0.25 + 0.5 * bits) * scale
    ll = _unblocks(DCT.T @ _with_carrier(dct, quantized, method) @ DCT)
    yuv[:height, :width, 1] = _inverse_haar(replace(bands, ll=ll))
    return _to_rgb(yuv)


@dataclass(frozen=True)
class Detection:
    """What `detect` found: the mark id (None when no mark's check held), the confidence (how
    far the blocks agree with their bits' votes beyond chance: about 0 unmarked, near 1
    marked), and the 64 bits read."""

    mark_id: int | None
    confidence: float
    bits: tuple[int, ...]


def _votes(u_plane: np.ndarray, method: Method) -> tuple[np.ndarray, float, np.ndarray]:
    """The 64 bits the plane's blocks vote for, how far the blocks agree beyond chance, and
    each bit's margin (how far its vote is from a tie)."""
    height, width = (u_plane.shape[0] // CELL) * CELL, (u_plane.shape[1] // CELL) * CELL
    ll = _haar(u_plane[:height, :width]).ll
    dct = DCT @ _blocks(ll) @ DCT.T
    scale = SCALES[method]
    read = ((_carrier(dct, method) % scale) > scale / 2).astype(np.float64)
    index = _bit_index(*dct.shape[:2]).ravel()
    ones = np.bincount(index, weights=read.ravel(), minlength=PAYLOAD_BITS)
    counts = np.bincount(index, minlength=PAYLOAD_BITS)
    share = ones / np.maximum(counts, 1)
    bits = (share > 0.5).astype(np.float64)
    agreement = float(np.sum(np.maximum(ones, counts - ones)) / np.sum(counts))
    return bits, _above_chance(agreement, float(np.mean(counts))), np.abs(share - 0.5)


def _above_chance(agreement: float, votes_per_bit: float) -> float:
    """How far the blocks agree beyond what chance gives: 0 for an unmarked image, 1 when
    every block agrees. Random blocks agree with their bit's majority at 0.5 + 0.5 E|2k/n - 1|
    for n votes, about 0.5 + sqrt(1 / (2 pi n)): more than half, and more for fewer votes."""
    chance = 0.5 + float(np.sqrt(1 / (2 * np.pi * max(votes_per_bit, 1.0))))
    return max(0.0, (agreement - chance) / (1 - chance))


def _untiled(bits: np.ndarray) -> list[np.ndarray]:
    """The 64 cyclic shifts of the bit tile, one of which a crop by whole blocks left."""
    tile = bits.reshape(TILE, TILE)
    return [np.roll(tile, (dr, dc), axis=(0, 1)).ravel() for dr in range(TILE) for dc in range(TILE)]


def _alignment(u_plane: np.ndarray, method: Method) -> tuple[int, int]:
    """The offset of the block grid whose blocks agree best, judged on a window of the plane
    (the whole plane would cost 64 full reads)."""
    window = u_plane[:ALIGNMENT_WINDOW + CELL, :ALIGNMENT_WINDOW + CELL]
    offsets = [(dy, dx) for dy in range(CELL) for dx in range(CELL)
               if can_carry(window.shape[1] - dx, window.shape[0] - dy)]
    return max(offsets, key=lambda offset: _votes(window[offset[0]:, offset[1]:], method)[1])


def _candidates(bits: np.ndarray, margins: np.ndarray) -> list[np.ndarray]:
    """The bits as read, then with the weakest votes flipped (every subset of the
    `WEAK_BITS` closest to a tie): a lossy re-encode moves the odd bit across."""
    weakest = np.argsort(margins)[:WEAK_BITS]
    tries = []
    for subset in range(1 << WEAK_BITS):
        flipped = bits.copy()
        for i, bit in enumerate(weakest):
            if subset >> i & 1:
                flipped[bit] = 1 - flipped[bit]
        tries.append(flipped)
    return tries


def detect(rgb: np.ndarray, method: Method = "dwtDctSvd", search_alignment: bool = True) -> Detection:
    """The mark in `rgb`, if any. With `search_alignment`, every offset of the 8-pixel block
    grid is tried (a crop from the top or left moves it) and the best agreeing one read."""
    if not can_carry(rgb.shape[1], rgb.shape[0]):
        return Detection(None, 0.0, ())
    u_plane = _to_yuv(rgb)[..., 1]
    dy, dx = _alignment(u_plane, method) if search_alignment else (0, 0)
    best_bits, best, margins = _votes(u_plane[dy:, dx:], method)
    found = None
    if best >= MIN_CONFIDENCE:
        tries = (shifted for candidate in _candidates(best_bits, margins)
                 for shifted in _untiled(candidate))
        found = next((m for m in map(mark_id_of, tries) if m is not None), None)
    return Detection(found, round(best, 4), tuple(int(b) for b in best_bits))
