"""Random PDQ-sized hashes and near copies of them, for index and bank tests."""

from __future__ import annotations

import numpy as np


def random_hashes(n: int, seed: int = 0) -> list[str]:
    """``n`` random 256-bit hashes as hex."""
    rng = np.random.default_rng(seed)
    return [bytes(row).hex() for row in rng.integers(0, 256, (n, 32), dtype=np.uint8)]


def flip_bits(h: str, k: int, seed: int) -> str:
    """``h`` with ``k`` distinct bits flipped (Hamming distance exactly ``k``)."""
    rng = np.random.default_rng(seed)
    v = int(h, 16)
    for b in rng.choice(256, size=k, replace=False):
        v ^= 1 << int(b)
    return f"{v:064x}"


def hex_rows(words: np.ndarray) -> list[str]:
    """Rows of four 64-bit words as 256-bit hex hashes."""
    raw = np.ascontiguousarray(words.astype(">u8")).tobytes()
    return [raw[i * 32 : (i + 1) * 32].hex() for i in range(len(words))]


def flip_random(rng: np.random.Generator, value: str, d: int) -> str:
    """``value`` with ``d`` random distinct bits flipped."""
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(value), dtype=np.uint8))
    bits[rng.choice(256, d, replace=False)] ^= 1
    return np.packbits(bits).tobytes().hex()


def mih_bank(rng: np.random.Generator, n: int, clustered: bool) -> list[str]:
    """``n`` hashes, uniform or in clusters (near copies around a few centres, the hard case for MIH)."""
    if not clustered:
        return hex_rows(rng.integers(0, 2**64, size=(n, 4), dtype=np.uint64))
    centres = hex_rows(rng.integers(0, 2**64, size=(max(1, n // 200), 4), dtype=np.uint64))
    return [flip_random(rng, centres[int(rng.integers(len(centres)))], int(rng.integers(0, 24))) for _ in range(n)]


def mih_queries(rng: np.random.Generator, values: list[str], k: int) -> list[str]:
    """Queries at every distance 0-31 from stored values, plus ``k`` at random distances up to 47."""
    qs = [flip_random(rng, values[int(rng.integers(len(values)))], d) for d in range(32)]
    qs += [flip_random(rng, values[int(rng.integers(len(values)))], int(rng.integers(0, 48))) for _ in range(k)]
    return qs
