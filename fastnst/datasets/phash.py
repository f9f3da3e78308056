"""Perceptual hashes (dHash, pHash) as 64-bit ints, written in NumPy.

Two frames of the same shot hash to nearby values even after re-encoding or a small
camera move, so the Hamming distance between hashes finds near-duplicates cheaply.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from PIL import Image

HASH_BITS = 64


def _gray(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(image.convert("L").resize(size, Image.Resampling.LANCZOS), dtype=np.float64)


def _pack(bits: np.ndarray) -> int:
    value = 0
    for bit in bits.ravel():
        value = (value << 1) | int(bit)
    return value


def dhash(image: Image.Image) -> int:
    """Difference hash: is each pixel brighter than its right neighbour, on a 9x8 thumbnail."""
    pixels = _gray(image, (9, 8))
    return _pack(pixels[:, 1:] > pixels[:, :-1])


@cache
def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II basis: ``M @ x`` is the DCT of the column vector ``x``."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    matrix = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    matrix[0] /= np.sqrt(2.0)
    return matrix


def phash(image: Image.Image) -> int:
    """DCT hash: the 8x8 lowest frequencies of a 32x32 thumbnail against their median
    (the DC term is left out: it only encodes overall brightness)."""
    pixels = _gray(image, (32, 32))
    dct = _dct_matrix(32)
    low = (dct @ pixels @ dct.T)[:8, :8].ravel()
    ac = low[1:]
    return _pack(low > np.median(ac))


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes."""
    return (a ^ b).bit_count()


def to_hex(value: int) -> str:
    return f"{value:016x}"


def from_hex(text: str) -> int:
    return int(text, 16)
