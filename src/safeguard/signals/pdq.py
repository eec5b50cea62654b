"""PDQ: Meta's 256-bit perceptual image hash, computed with the ``pdqhash`` bindings.

Values are 64 lowercase hex characters, bit 0 of pdqhash's vector being the most significant bit
(the format of python-threatexchange, HMA, NCMEC and StopNCII lists). Images are decoded to RGB or L
exactly as the reference does for those modes, so the hash equals the reference's for the same
decoded pixels (``tests/signals/test_pdq.py`` checks this against threatexchange).

Quality (0-100) travels with the hash; below 50 PDQ's authors consider the hash unreliable (flat or
tiny images), and the hash-match detector lowers such matches' confidence.

An animated or multi-frame image (``media/animation.py``) yields one signal per hashed frame, each with
its ``frame`` index; a still image yields one signal without, exactly as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import pdqhash
from PIL import Image

from safeguard.content import Signal
from safeguard.media import Media, animation
from safeguard.signals.base import SignalType, noncanonical_hex, validate_hex
from safeguard.signals.pdqmath import pdq_plane_dihedral_hex, pdq_plane_hex

if TYPE_CHECKING:
    from safeguard.index.base import SignalIndex

PDQ_QUALITY_FLOOR = 50


def bits_to_hex(bits: np.ndarray) -> str:
    packed = np.packbits(np.asarray(bits, dtype=np.uint8))
    return packed.tobytes().hex()


def image_array(im: Image.Image) -> np.ndarray:
    arr = np.asarray(im)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., np.newaxis], 3, axis=2)
    return arr


def pdq_hex(im: Image.Image) -> tuple[str, int]:
    bits, quality = pdqhash.compute(image_array(im))
    return bits_to_hex(bits), int(quality)


def pdq_dihedral_hex(im: Image.Image) -> list[tuple[str, int]]:
    """The eight dihedral variants (rotations and flips) of the image's PDQ hash."""
    hashes, quality = pdqhash.compute_dihedral(image_array(im))
    return [(bits_to_hex(h), int(quality)) for h in hashes]


def media_dihedral_hex(media: Media) -> list[tuple[str, int]]:
    """The dihedral PDQ hashes of an uploaded image, decoded the way :class:`PDQSignal` decodes it."""
    plane = media.pdq_plane()
    return pdq_plane_dihedral_hex(plane) if plane is not None else pdq_dihedral_hex(media.image())


class PDQSignal(SignalType):
    name = "pdq"
    metric: ClassVar[Literal["exact", "hamming"]] = "hamming"
    bits = 256
    default_threshold = 31
    computes_from = frozenset({"image"})
    examples = (
        "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22",
        "0000000000000000000000000000000000000000000000000000000000000000",
    )

    def new_index(self) -> SignalIndex:
        """Exact multi-index hashing (``index/mih.py``); ``HammingIndex`` stays the brute-force reference."""
        from safeguard.index.mih import MIHIndex

        return MIHIndex(bits=self.bits)

    def compute(self, media: Media) -> list[Signal]:
        plane = media.pdq_plane()
        value, quality = pdq_plane_hex(plane) if plane is not None else pdq_hex(media.image())
        anim = animation.plan(media)
        if anim is None:  # a still image: one hash, as always
            return [Signal(self.name, value, quality=quality)]
        # an animated or multi-frame image: the frame a still decode shows, then the sampled others
        out = [Signal(self.name, value, quality=quality, frame=anim.first)]
        for k, frame in animation.frames(media, anim):
            v, q = pdq_hex(frame)
            out.append(Signal(self.name, v, quality=q, frame=k))
        return out

    def validate(self, value: str) -> str:
        return validate_hex(value, name="pdq", nchars=64)

    def noncanonical(self, values: Sequence[str]) -> list[int]:
        return noncanonical_hex(values, 64)
