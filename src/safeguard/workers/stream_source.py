"""Stream bytes fetched by Safeguard itself, so that every connection passes the egress policy.

FFmpeg, given an HTTP or HLS URL, resolves names, follows redirects and opens every segment URL a
playlist names on its own: no policy can stand between it and the network. So for ``http(s)://``
sources Safeguard does the fetching, through the policy's checked httpx client
(:func:`safeguard.egress.checked_client`: each connection resolved once, every address checked, the
checked address connected to), and gives PyAV the bytes as a file-like object:

- **redirects** are followed here, at most :data:`MAX_REDIRECTS`, each to ``http(s)`` only, and each
  new connection is checked like the first;
- **HLS**: the playlist is parsed here (a master playlist: its first variant; a media playlist: its
  segments in order, ``EXT-X-MAP`` init sections and ``EXT-X-BYTERANGE`` included); every segment and
  sub-playlist URL is fetched through the same client, so a playlist on an allowed host that names
  segments on a refused one gets :class:`~safeguard.egress.EgressRefused` for that segment and the
  watch fails with that reason. Segments are concatenated as FFmpeg's own HLS demuxer does (MPEG-TS
  and fragmented MP4 both read that way). A live playlist is reloaded every half target duration
  while no new segment has appeared, and the watch starts three segments from its live edge, as
  FFmpeg does; one that stays unchanged for ``hold_seconds`` ends the stream. Encrypted playlists
  (``EXT-X-KEY``) are refused as unsupported;
- anything else over HTTP (a progressive MPEG-TS, FLV or fragmented MP4) is read as it arrives.

Network failures raise :class:`SourceUnreachable` (the watcher shows callers a generic message and
logs the detail); refusals propagate as :class:`~safeguard.egress.EgressRefused`.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urljoin

import httpx

from safeguard.egress import EgressPolicy, EgressRefused, checked_client, parse_url

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
MAX_PLAYLIST_BYTES = 1024 * 1024
LIVE_START_SEGMENTS = 3  # FFmpeg's live_start_index -3
MAX_FAILED_SEGMENTS = 3  # consecutive segments that fail before the source counts as unreachable
HTTP_SCHEMES = ("http", "https")


class SourceUnreachable(Exception):
    """The source could not be read: connection, timeout, TLS, an HTTP error status, a bad playlist."""


class SourceUnsupported(SourceUnreachable):
    """The source uses something Safeguard does not read (an encrypted playlist)."""


# -- playlists ------------------------------------------------------------------------------------
@dataclass
class Segment:
    seq: int
    uri: str
    byterange: tuple[int, int] | None = None  # (length, offset)
    init: tuple[str, tuple[int, int] | None] | None = None  # EXT-X-MAP (uri, byterange)


@dataclass
class Playlist:
    target_duration: float = 2.0
    endlist: bool = False
    segments: list[Segment] = field(default_factory=list)
    variants: list[str] = field(default_factory=list)  # a master playlist's media playlists, in order


def _attrs(text: str) -> dict[str, str]:
    """``KEY=VALUE,KEY="quoted, value"`` attribute lists."""
    out: dict[str, str] = {}
    i = 0
    while i < len(text):
        eq = text.find("=", i)
        if eq < 0:
            break
        key = text[i:eq].strip().upper()
        if text[eq + 1 : eq + 2] == '"':
            end = text.find('"', eq + 2)
            end = len(text) if end < 0 else end
            out[key] = text[eq + 2 : end]
            i = text.find(",", end) + 1 if text.find(",", end) >= 0 else len(text)
        else:
            end = text.find(",", eq)
            end = len(text) if end < 0 else end
            out[key] = text[eq + 1 : end].strip()
            i = end + 1
    return out


def _byterange(spec: str, last_end: int) -> tuple[int, int]:
    length, _, offset = spec.partition("@")
    return int(length), int(offset) if offset else last_end


def parse_playlist(text: str, base: str) -> Playlist:
    """An M3U8 playlist; URIs made absolute against ``base``. ``SourceUnreachable`` if it is not one."""
    lines = [ln.strip() for ln in text.lstrip("\ufeff").splitlines()]
    if not lines or lines[0] != "#EXTM3U":
        raise SourceUnreachable("not an M3U8 playlist")
    pl = Playlist()
    seq = 0
    pending_range: tuple[int, int] | None = None
    pending_variant = False
    init: tuple[str, tuple[int, int] | None] | None = None
    last_end: dict[str, int] = {}
    try:
        for ln in lines[1:]:
            if not ln:
                continue
            if ln.startswith("#"):
                tag, _, value = ln.partition(":")
                if tag == "#EXT-X-TARGETDURATION":
                    pl.target_duration = max(0.1, float(value))
                elif tag == "#EXT-X-MEDIA-SEQUENCE":
                    seq = int(value)
                elif tag == "#EXT-X-ENDLIST":
                    pl.endlist = True
                elif tag == "#EXT-X-BYTERANGE":
                    pending_range = _byterange(value, -1)
                elif tag == "#EXT-X-STREAM-INF":
                    pending_variant = True
                elif tag == "#EXT-X-MAP":
                    a = _attrs(value)
                    uri = urljoin(base, a["URI"])
                    init = (uri, _byterange(a["BYTERANGE"], 0) if "BYTERANGE" in a else None)
                elif (
                    tag in ("#EXT-X-KEY", "#EXT-X-SESSION-KEY")
                    and _attrs(value).get("METHOD", "NONE").upper() != "NONE"
                ):
                    raise SourceUnsupported("encrypted HLS (EXT-X-KEY) is not supported")
                continue
            uri = urljoin(base, ln)
            if pending_variant:
                pl.variants.append(uri)
                pending_variant = False
                continue
            rng = None
            if pending_range is not None:
                length, offset = pending_range
                rng = (length, offset if offset >= 0 else last_end.get(uri, 0))
                last_end[uri] = rng[1] + length
                pending_range = None
            pl.segments.append(Segment(seq, uri, rng, init))
            seq += 1
    except (ValueError, KeyError) as exc:
        raise SourceUnreachable(f"malformed playlist: {exc}") from None
    return pl


# -- fetching -------------------------------------------------------------------------------------
class Fetcher:
    """GETs through the checked client, following redirects itself (each hop's URL parsed strictly)."""

    def __init__(self, policy: EgressPolicy, open_timeout: float, read_timeout: float) -> None:
        self.policy = policy
        self.client = checked_client(
            policy, httpx.Timeout(connect=open_timeout, read=read_timeout, write=read_timeout, pool=open_timeout)
        )

    def close(self) -> None:
        self.client.close()

    def _check(self, url: str) -> None:
        target = parse_url(url, HTTP_SCHEMES, code="egress_refused")
        if not isinstance(target.host, str):  # an address: refuse it here, with the clearest message
            self.policy.check_address(target.host)

    def open(self, url: str, byterange: tuple[int, int] | None = None) -> httpx.Response:
        """A streaming response (the caller closes it); ``SourceUnreachable`` on any network failure."""
        headers = {"User-Agent": "Safeguard-StreamMonitor/1"}
        if byterange is not None:
            length, offset = byterange
            headers["Range"] = f"bytes={offset}-{offset + length - 1}"
        for _ in range(MAX_REDIRECTS + 1):
            try:
                self._check(url)
            except EgressRefused:
                raise
            except Exception as exc:  # InvalidInput from parse_url: a redirect to something that is not http(s)
                raise EgressRefused(f"URL {url[:200]!r} is refused: {getattr(exc, 'message', exc)}") from None
            try:
                resp = self.client.send(self.client.build_request("GET", url, headers=headers), stream=True)
            except httpx.HTTPError as exc:
                raise SourceUnreachable(f"{type(exc).__name__}: {exc}") from None
            if resp.is_redirect and "location" in resp.headers:
                resp.close()
                url = urljoin(url, resp.headers["location"])
                continue
            if not 200 <= resp.status_code < 300:
                resp.close()
                raise SourceUnreachable(f"HTTP {resp.status_code} from {url[:200]}")
            return resp
        raise SourceUnreachable(f"more than {MAX_REDIRECTS} redirects")

    def text(self, url: str) -> tuple[str, str]:
        """A small body (a playlist) as text, and the URL it came from after redirects."""
        resp = self.open(url)
        try:
            body = b""
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > MAX_PLAYLIST_BYTES:
                    raise SourceUnreachable(f"playlist larger than {MAX_PLAYLIST_BYTES} bytes")
            return body.decode("utf-8", errors="replace"), str(resp.url)
        except httpx.HTTPError as exc:
            raise SourceUnreachable(f"{type(exc).__name__}: {exc}") from None
        finally:
            resp.close()


class HttpSource(io.RawIOBase):
    """A non-seekable file PyAV reads; its bytes come from :meth:`chunks` (HLS or a plain HTTP body)."""

    def __init__(
        self,
        url: str,
        policy: EgressPolicy,
        stop: threading.Event,
        *,
        open_timeout: float = 10.0,
        read_timeout: float = 10.0,
        hold_seconds: float = 60.0,
        stalled: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__()
        self.url = url
        self.stop = stop
        self.hold_seconds = hold_seconds
        #: the watcher's "no frame for too long": checked at every read, so a server that drips bytes
        #: slowly enough to pass every read timeout cannot hold a watcher for ever
        self.stalled = stalled
        self.fetcher = Fetcher(policy, open_timeout, read_timeout)
        self._it: Iterator[bytes] = self.chunks()
        self._buf = b""
        #: why the bytes stopped early (a refusal, a network failure): PyAV sees only the end of the
        #: file, the watcher raises this after it (rather than through FFmpeg's read callback)
        self.error: Exception | None = None

    # io.RawIOBase
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        """What PyAV calls: up to ``size`` bytes, b"" at the end (a whole fetched chunk when it fits: no copy)."""
        if self.stalled is not None and self.error is None and self.stalled():
            self.error = SourceUnreachable("no frame for too long while bytes kept coming")
        while not self._buf:
            if self.stop.is_set() or self.error is not None:
                return b""
            try:
                self._buf = next(self._it)
            except StopIteration:
                return b""
            except Exception as exc:
                self.error = exc
                return b""
        if size < 0 or size >= len(self._buf):
            out, self._buf = self._buf, b""
            return out
        out, self._buf = self._buf[:size], self._buf[size:]
        return out

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        got = self.read(len(b))
        b[: len(got)] = got
        return len(got)

    def close(self) -> None:
        self.fetcher.close()
        super().close()

    # the bytes
    def chunks(self) -> Iterator[bytes]:
        resp = self.fetcher.open(self.url)
        try:
            first = b""
            body = resp.iter_bytes()
            for piece in body:
                first = piece
                if piece:
                    break
            if not first.lstrip(b"\xef\xbb\xbf \r\n\t").startswith(b"#EXTM3U"):
                yield first
                for piece in body:  # a plain HTTP stream: its bytes as they come
                    if self.stop.is_set():
                        return
                    yield piece
                return
            text = first
            for piece in body:
                text += piece
                if len(text) > MAX_PLAYLIST_BYTES:
                    raise SourceUnreachable(f"playlist larger than {MAX_PLAYLIST_BYTES} bytes")
            base = str(resp.url)
        except httpx.HTTPError as exc:
            raise SourceUnreachable(f"{type(exc).__name__}: {exc}") from None
        finally:
            resp.close()
        pl = parse_playlist(text.decode("utf-8", errors="replace"), base)
        if pl.variants:  # a master playlist: its first variant
            url = pl.variants[0]
            body_text, base = self.fetcher.text(url)
            pl = parse_playlist(body_text, base)
            if pl.variants:
                raise SourceUnreachable("a master playlist names another master playlist")
        else:
            url = self.url
        yield from self._media(url, pl)

    def _segment(self, seg: Segment, current_init: list[tuple[str, tuple[int, int] | None] | None]) -> Iterator[bytes]:
        if seg.init is not None and seg.init != current_init[0]:
            yield from self._body(seg.init[0], seg.init[1])
            current_init[0] = seg.init
        yield from self._body(seg.uri, seg.byterange)

    def _body(self, url: str, byterange: tuple[int, int] | None) -> Iterator[bytes]:
        resp = self.fetcher.open(url, byterange)
        # a server that ignores Range answers 200 with the whole file: cut the range out here
        skip, left = (byterange[1], byterange[0]) if byterange and resp.status_code == 200 else (0, -1)
        try:
            for piece in resp.iter_bytes():
                if self.stop.is_set():
                    return
                if skip:
                    cut = min(skip, len(piece))
                    piece, skip = piece[cut:], skip - cut
                if left >= 0:
                    piece, left = piece[:left], left - min(left, len(piece))
                if piece:
                    yield piece
                if left == 0:
                    return
        except httpx.HTTPError as exc:
            raise SourceUnreachable(f"{type(exc).__name__}: {exc}") from None
        finally:
            resp.close()

    def _media(self, url: str, pl: Playlist) -> Iterator[bytes]:
        next_seq: int | None = None
        current_init: list[tuple[str, tuple[int, int] | None] | None] = [None]
        last_new = time.monotonic()
        failed = 0
        while not self.stop.is_set():
            if next_seq is None and pl.segments:
                start = 0 if pl.endlist else max(0, len(pl.segments) - LIVE_START_SEGMENTS)
                next_seq = pl.segments[start].seq
            new = [s for s in pl.segments if next_seq is not None and s.seq >= next_seq]
            for seg in new:
                if self.stop.is_set():
                    return
                try:
                    yield from self._segment(seg, current_init)
                    failed = 0
                except SourceUnreachable as exc:  # one missing segment is skipped, as FFmpeg does
                    failed += 1
                    log.info("stream segment %s failed: %s", seg.uri[:200], exc)
                    if failed >= MAX_FAILED_SEGMENTS:
                        raise
                next_seq = seg.seq + 1
            if pl.endlist:
                return
            now = time.monotonic()
            if new:
                last_new = now
            elif now - last_new >= self.hold_seconds:
                return  # the playlist stopped changing: the stream is over
            self.stop.wait(pl.target_duration / 2 if not new else min(pl.target_duration / 2, 1.0))
            if self.stop.is_set():
                return
            body_text, base = self.fetcher.text(url)
            pl = parse_playlist(body_text, base)
