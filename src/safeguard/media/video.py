"""Decode video as little as possible, and turn sampled frames into PDQ hashes.

Uploads and live streams share this module. Both want one frame every ``interval`` seconds, and
both are dominated by decoding, so the sampler:

- demuxes every packet but sends a packet to the decoder only when it can yield a frame we want.
  In ``keyframes`` mode only keyframes are decoded (each decodes on its own); in ``all`` mode every
  packet is decoded (inter frames need their references), and ``auto`` starts with keyframes and
  switches to ``all`` when keyframes are further apart than twice the interval;
- converts the chosen frame straight to a small RGB array in FFmpeg's scaler (``max_side``), since
  PDQ reduces every image to 64x64 luma anyway; uploads use full resolution for hashes that agree
  with the reference ``vpdq`` library, streams use a reduced size for speed.

Timestamps are seconds from the first frame, rounded to milliseconds (vPDQ's precision).

Memory: frames larger than :data:`REDUCE_ABOVE_PIXELS` (1080p) are scaled to that many pixels in
FFmpeg's scaler before any RGB array exists, and decoded with one thread (a frame-threaded decoder
holds a frame per thread). :func:`video_decode_cost` estimates the peak from the header, which a scan
reserves from the decode budget first (:mod:`safeguard.media.budget`).
"""

from __future__ import annotations

import io
import math
import os
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import av
import av.error
import numpy as np
import pdqhash

from safeguard.errors import MediaError
from safeguard.signals.pdq import bits_to_hex

DecodeMode = Literal["keyframes", "all", "auto"]


@dataclass(frozen=True, slots=True)
class FrameHash:
    timestamp: float
    value: str
    quality: int


def open_container(source: bytes | str, *, options: dict[str, str] | None = None, timeout: float | None = None) -> Any:
    """Open bytes (an upload) or a URL/path (a stream) with PyAV, raising MediaError on failure.

    Container and stream metadata (titles, handler names) are decoded with ``errors="replace"``: PyAV
    decodes them strictly by default, so one non-UTF-8 byte in a tag was a ``UnicodeDecodeError`` (a
    500) before a single frame was read; Safeguard never uses the metadata.
    """
    try:
        if isinstance(source, bytes):
            # an upload's bytes are all there is: no demuxer may open a URL of its own (egress)
            return av.open(
                io.BytesIO(source), mode="r", options={"protocol_whitelist": "none"}, metadata_errors="replace"
            )
        return av.open(source, mode="r", options=options or {}, timeout=timeout, metadata_errors="replace")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise MediaError(f"video could not be opened: {exc}", code="corrupt_media") from exc


def _scaled_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(2, round(width * scale)) & ~1, max(2, round(height * scale)) & ~1


#: frames over this many pixels are scaled down to it before hashing, and decoded on one thread
REDUCE_ABOVE_PIXELS = 1920 * 1088
#: frames a decoder holds besides one per thread: references (H.264's DPB at large sizes) and output
HELD_FRAMES = 5
#: what ``pdqhash.compute`` allocates per pixel of the RGB array it hashes, plus the array itself
HASH_BYTES_PER_PIXEL = 23
OVERHEAD_BYTES = 16 * 1024 * 1024


def frame_plan(width: int, height: int, max_side: int | None) -> tuple[int | None, int]:
    """(``max_side`` to scale frames to, decoder threads: 0 = FFmpeg's choice) for a frame size."""
    if width * height <= REDUCE_ABOVE_PIXELS:
        return max_side, 0
    fit = int(max(width, height) * math.sqrt(REDUCE_ABOVE_PIXELS / (width * height)))
    return (fit if max_side is None else min(max_side, fit)), 1


def _bytes_per_pixel(pix_fmt: str | None) -> float:
    if pix_fmt in ("yuv420p", "yuvj420p", "nv12", "nv21", "gray"):
        return 1.5
    if pix_fmt and any(d in pix_fmt for d in ("10", "12", "16")):
        return 8.0  # high bit depth: two bytes a sample, up to four samples a pixel
    return 4.0


def frames_cost(width: int, height: int, pix_fmt: str | None, max_side: int | None) -> int:
    """Estimated peak bytes of decoding and hashing frames of this size (see :func:`frame_plan`)."""
    side, threads = frame_plan(width, height, max_side)
    held = (threads or (os.cpu_count() or 1) + 1) + HELD_FRAMES
    out_w, out_h = _scaled_size(width, height, side)
    return (
        int(width * height * _bytes_per_pixel(pix_fmt) * held) + out_w * out_h * HASH_BYTES_PER_PIXEL + OVERHEAD_BYTES
    )


@dataclass(frozen=True, slots=True)
class VideoHeader:
    """What a container's header says, read without decoding a frame."""

    width: int
    height: int
    pix_fmt: str | None
    seconds: float | None


def read_header(data: bytes) -> VideoHeader | None:
    """The first video stream's frame size, pixel format and the duration; None when unreadable."""
    try:
        with open_container(data) as c:
            if not c.streams.video:
                return None
            vs = c.streams.video[0]
            cc = vs.codec_context
            if cc is None:  # a track without a codec: the decode refuses it as corrupt_media
                return None
            seconds: float | None = None
            if c.duration:
                seconds = float(c.duration) / 1_000_000
            elif vs.duration and vs.time_base:
                seconds = float(vs.duration * vs.time_base)
            return VideoHeader(int(cc.width or 0), int(cc.height or 0), cc.pix_fmt, seconds)
    except (MediaError, av.error.FFmpegError, ValueError, UnicodeDecodeError):
        return None


def video_decode_cost(data: bytes, *, max_frame_pixels: int, max_side: int | None = None) -> int:
    """Estimated peak bytes of :func:`hash_video` on these bytes (0 when the header is unreadable:
    the decode then fails on its own; 0 as well over ``max_frame_pixels``, which it refuses first)."""
    head = read_header(data)
    if head is None or not head.width or not head.height or head.width * head.height > max_frame_pixels:
        return 0
    return frames_cost(head.width, head.height, head.pix_fmt, max_side)


def frame_pdq(frame: Any, max_side: int | None = None) -> tuple[str, int]:
    """PDQ of one decoded frame, via an RGB array scaled by FFmpeg to at most ``max_side``."""
    if max_side is None and frame.width * frame.height > REDUCE_ABOVE_PIXELS:  # a stream that grew mid-way
        max_side = frame_plan(frame.width, frame.height, None)[0]
    w, h = _scaled_size(frame.width, frame.height, max_side)
    rgb = frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="AREA")
    bits, quality = pdqhash.compute(np.ascontiguousarray(rgb))
    return bits_to_hex(bits), int(quality)


class FrameSampler:
    """Feeds packets of one video stream; returns the frames due for hashing.

    Separate from any container so the stream monitor can reuse it across reconnects and change its
    interval while it runs (faster while a stream is under suspicion).
    """

    def __init__(
        self,
        codec_context: Any,
        time_base: Fraction,
        *,
        interval: float = 1.0,
        mode: DecodeMode = "auto",
        max_side: int | None = None,
    ) -> None:
        self.codec = codec_context
        self.time_base = time_base
        self.interval = interval
        self.mode: DecodeMode = mode
        self.max_side = max_side
        self.next_t: float | None = None  # stream time of the next wanted frame
        self.t0: float | None = None
        self.last_key_t: float | None = None
        self.decoding_all = mode == "all"
        self._awaiting = False
        self._need_key = False
        self._sparse_keys = False
        self.packets = 0
        self.decoded = 0

    def wants_all_frames(self, on: bool) -> None:
        """Decode every frame (suspicion) from the next keyframe on, or go back to keyframes only."""
        want = on or self.mode == "all" or self._sparse_keys
        if want and not self.decoding_all:
            self._need_key = True  # the frames since the last keyframe were skipped: no references yet
        self.decoding_all = want

    def feed(self, packet: Any) -> list[FrameHash]:
        self.packets += 1
        if packet.pts is None and packet.dts is None:
            return []
        pts = packet.pts if packet.pts is not None else packet.dts
        t = float(pts * self.time_base)
        if self.t0 is None:
            self.t0 = t
        if packet.is_keyframe:
            if self.mode == "auto" and self.last_key_t is not None and t - self.last_key_t > 2 * self.interval:
                self.decoding_all = self._sparse_keys = True
            self.last_key_t = t
            self._need_key = False
        elif self._need_key:
            return []
        due = self.next_t is None or t + 1e-6 >= self.next_t
        if not self.decoding_all and not self._awaiting and not (packet.is_keyframe and due):
            return []
        try:
            frames = self.codec.decode(packet)
        except av.error.FFmpegError:
            return []  # a damaged packet: skip it, the next keyframe resynchronises the decoder
        # A decoder that reorders (B-frames) holds the keyframe back until it has seen a few more
        # packets: keep feeding it until the frame comes out, rather than a whole GOP later.
        self._awaiting = not frames and not self.decoding_all
        out: list[FrameHash] = []
        for frame in frames:
            self.decoded += 1
            ft = float(frame.pts * self.time_base) if frame.pts is not None else t
            if self.next_t is not None and ft + 1e-6 < self.next_t:
                continue
            value, quality = frame_pdq(frame, self.max_side)
            rel = round(ft - (self.t0 or 0.0), 3)
            out.append(FrameHash(max(rel, 0.0), value, quality))
            self._advance(ft)
        return out

    def _advance(self, ft: float) -> None:
        """The next wanted time: the next point of the ``interval`` grid from the first frame (as vPDQ)."""
        t0 = self.t0 or 0.0
        self.next_t = t0 + (math.floor((ft - t0) / self.interval + 1e-6) + 1) * self.interval

    def flush(self) -> list[FrameHash]:
        """Frames the decoder still holds (frame threading delays output) at the end of a file."""
        out: list[FrameHash] = []
        try:
            frames = self.codec.decode(None)
        except av.error.FFmpegError:
            return out
        for frame in frames:
            if frame.pts is None:
                continue
            ft = float(frame.pts * self.time_base)
            if self.next_t is not None and ft + 1e-6 < self.next_t:
                continue
            value, quality = frame_pdq(frame, self.max_side)
            out.append(FrameHash(max(round(ft - (self.t0 or 0.0), 3), 0.0), value, quality))
            self._advance(ft)
        return out


def hash_video(
    source: bytes | str,
    *,
    interval: float = 1.0,
    mode: DecodeMode = "all",
    max_side: int | None = None,
    max_frame_pixels: int = 50_000_000,
    max_seconds: float | None = None,
    threads: bool = True,
) -> list[FrameHash]:
    """Per-frame PDQ of a whole video file: one frame every ``interval`` seconds of video time."""
    container = open_container(source)
    try:
        if not container.streams.video:
            raise MediaError("the file has no video stream", code="no_video_stream")
        vs = container.streams.video[0]
        cc = vs.codec_context
        if cc is None:  # the track names a codec FFmpeg does not have (a damaged header, often)
            raise MediaError("the video track's codec cannot be decoded", code="corrupt_media")
        if cc.width and cc.height and cc.width * cc.height > max_frame_pixels:
            raise MediaError(
                f"video frames are {cc.width}x{cc.height}, over the limit of {max_frame_pixels} pixels",
                code="too_many_pixels",
                status=413,
            )
        thread_count = 0
        if cc.width and cc.height:
            max_side, thread_count = frame_plan(cc.width, cc.height, max_side)
        if threads:
            vs.thread_type = "AUTO"
            if thread_count:
                cc.thread_count = thread_count
        sampler = FrameSampler(cc, vs.time_base or Fraction(1, 90000), interval=interval, mode=mode, max_side=max_side)
        out: list[FrameHash] = []
        try:
            for packet in container.demux(vs):
                if packet.size == 0:  # flush packet at the end
                    continue
                out.extend(sampler.feed(packet))
                if max_seconds is not None and out and out[-1].timestamp > max_seconds:
                    break
            else:
                out.extend(sampler.flush())
        except av.error.FFmpegError as exc:
            if not out:
                raise MediaError(f"video could not be decoded: {exc}", code="corrupt_media") from exc
        return out
    finally:
        container.close()


class Pacer:
    """Reads a local file at its own speed (like ``ffmpeg -re``), so a file can stand in for a live stream."""

    def __init__(self) -> None:
        self.start_wall: float | None = None
        self.start_t: float | None = None

    def wait(self, t: float) -> None:
        now = time.monotonic()
        if self.start_wall is None or self.start_t is None:
            self.start_wall, self.start_t = now, t
            return
        ahead = (t - self.start_t) - (now - self.start_wall)
        if ahead > 0:
            time.sleep(min(ahead, 1.0))
