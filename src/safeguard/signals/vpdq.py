"""vPDQ: a video as the list of its frames' PDQ hashes, one frame per second, with timestamps.

**Value format.** A vPDQ signal is *one frame*: ``Signal("vpdq", <64 hex PDQ>, quality, timestamp=t)``.
A video's vPDQ is the list of those signals, so hash-only clients send the list, decisions carry it,
and the index layer treats ``vpdq`` like any 256-bit Hamming hash (no special index).

**Bank entries.** A banked video is stored as one ``vpdq`` entry per *distinct* frame hash, with
provenance ``{"video": <key>, "video_frames": <distinct frames of good quality>, "timestamps":
[...]}``. ``video`` groups the entries back into a video for vPDQ's two percentages, and
``video_frames`` is the denominator of the target percentage. Hash lists may also carry a whole
video in one row in ThreatExchange's compact form, a JSON list of ``"<hex>,<quality>,<timestamp>"``
strings: :func:`expand_rows` turns it into the per-frame entries (``provenance.video`` then defaults
to the SHA-256 of the canonical list). A frame hash shared by two banked videos in one bank is stored
once (the bank's unique key is the value); the last import's provenance wins.

**Hashes.** Frames are decoded with PyAV and hashed with the same PDQ as images; at full resolution
and one frame per second the hashes equal the reference ``vpdq`` library's bit for bit
(``tests/signals/test_vpdq.py`` checks this when ``vpdq`` is installed).

**Matching** (``detectors/video_match.py``) follows vPDQ's: frames under quality 50 are ignored; a
query frame matches a target frame within PDQ distance 31; a banked video matches when at least 80 %
of the query's frames and at least 0 % of the target's frames matched (both configurable per bank).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from safeguard import strictjson
from safeguard.content import Signal
from safeguard.errors import InvalidInput
from safeguard.media import Media
from safeguard.signals.base import SignalType, noncanonical_hex, validate_hex

if TYPE_CHECKING:
    from safeguard.index.base import SignalIndex

VPDQ_QUALITY_THRESHOLD = 50
VPDQ_DISTANCE_THRESHOLD = 31
VPDQ_QUERY_MATCH_THRESHOLD_PERCENT = 80
VPDQ_INDEX_MATCH_THRESHOLD_PERCENT = 0
SECONDS_PER_HASH = 1.0


class VPDQSignal(SignalType):
    name = "vpdq"
    metric: ClassVar[Literal["exact", "hamming"]] = "hamming"
    bits = 256
    default_threshold = VPDQ_DISTANCE_THRESHOLD
    computes_from = frozenset({"video"})
    examples = (
        "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22",
        "0000000000000000000000000000000000000000000000000000000000000000",
    )
    #: seconds of video between hashed frames, and the longest side frames are scaled to before
    #: hashing (None: full size, as the reference library does)
    seconds_per_hash: float = SECONDS_PER_HASH
    max_side: int | None = None

    def list_entries(self, value: str, *, video: str | None = None) -> list[tuple[str, dict[str, Any]]] | None:
        """A compact JSON list of a video's frames: one entry per distinct good-quality frame hash."""
        if not is_compact(value):
            return None
        return entry_rows(from_compact(value), video=video)

    def file_entries(self, signals: list[Signal], *, file_sha256: str | None) -> list[tuple[str, dict[str, Any]]]:
        """A video's frames: one entry per distinct frame hash, grouped under the file's SHA-256."""
        return entry_rows(signals, video=file_sha256)

    def new_index(self) -> SignalIndex:
        """Exact multi-index hashing (``index/mih.py``); ``HammingIndex`` stays the brute-force reference."""
        from safeguard.index.mih import MIHIndex

        return MIHIndex(bits=self.bits)

    def compute(self, media: Media) -> list[Signal]:
        from safeguard.media.video import hash_video

        frames = hash_video(
            media.data, interval=self.seconds_per_hash, max_side=self.max_side, max_frame_pixels=media.max_pixels
        )
        return [Signal(self.name, f.value, quality=f.quality, timestamp=f.timestamp) for f in frames]

    def validate(self, value: str) -> str:
        return validate_hex(value, name="vpdq frame hash", nchars=64)

    def noncanonical(self, values: Sequence[str]) -> list[int]:
        return noncanonical_hex(values, 64)


# -- the compact serialisation (ThreatExchange's) and bank rows --------------------------------------
def to_compact(signals: list[Signal]) -> str:
    """A video's frames as a JSON list of ``"hex,quality,timestamp"`` (python-threatexchange's form)."""
    return json.dumps([f"{s.value},{s.quality or 0},{(s.timestamp or 0.0):.3f}" for s in signals])


#: a frame's quality and timestamp in the compact form: ASCII digits only (``int``/``float`` would also
#: take other scripts' digits, signs, ``_``, ``nan`` and ``inf``)
_QUALITY = re.compile(r"[0-9]{1,3}")
_TIMESTAMP = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9})?")
#: longest video a compact list may describe, in seconds of video time (10 million: 115 days)
MAX_TIMESTAMP = 10_000_000.0


def from_compact(text: str) -> list[Signal]:
    """Parse the compact form; raise InvalidInput naming the first bad item."""
    items = strictjson.loads(text, what="the vpdq list")
    if not isinstance(items, list):
        raise InvalidInput("vpdq list must be a JSON list", code="invalid_signal")
    out: list[Signal] = []
    for k, item in enumerate(items):
        parts = item.split(",") if isinstance(item, str) else []
        if len(parts) != 3:
            raise InvalidInput(f"vpdq frame {k}: expected 'hex,quality,timestamp'", code="invalid_signal")
        q, t = parts[1].strip(), parts[2].strip()
        if not (q.isascii() and _QUALITY.fullmatch(q) and t.isascii() and _TIMESTAMP.fullmatch(t)):
            raise InvalidInput(f"vpdq frame {k}: bad quality or timestamp", code="invalid_signal")
        quality, ts = int(q), float(t)
        if not 0 <= quality <= 100 or ts > MAX_TIMESTAMP:
            raise InvalidInput(f"vpdq frame {k}: quality or timestamp out of range", code="invalid_signal")
        out.append(Signal("vpdq", validate_hex(parts[0], name="vpdq frame hash", nchars=64), quality, ts))
    return out


def video_key(signals: list[Signal]) -> str:
    """A stable identifier for a list of frames: SHA-256 of the canonical compact form."""
    return hashlib.sha256(to_compact(signals).encode()).hexdigest()


def entry_rows(signals: list[Signal], *, video: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(value, provenance) per distinct good-quality frame hash of one video, in time order."""
    good = [s for s in signals if (s.quality or 0) >= VPDQ_QUALITY_THRESHOLD]
    key = video or video_key(signals)
    times: dict[str, list[float]] = {}
    for s in good:
        times.setdefault(s.value, []).append(float(s.timestamp or 0.0))
    n = len(times)
    return [(v, {"video": key, "video_frames": n, "timestamps": ts[:20]}) for v, ts in times.items()]


def is_compact(value: str) -> bool:
    return value.lstrip().startswith("[")
