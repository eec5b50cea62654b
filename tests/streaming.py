"""Real streams for tests and benchmarks, all on loopback: benign video segmented as HLS with PyAV's
HLS muxer, an HTTP server that publishes the segments as a *live* playlist (one more each segment
duration, the way a live packager does), and a webhook receiver that checks Safeguard's signature."""

from __future__ import annotations

import json
import threading
import time
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from safeguard.webhooks import SIGNATURE_HEADER, verify_signature
from tests.videogen import moving_frame


def make_hls(
    out_dir: Path,
    *,
    seconds: float = 8.0,
    fps: int = 10,
    size: tuple[int, int] = (192, 144),
    insert: Image.Image | None = None,
    insert_at: tuple[float, float] = (0.0, 0.0),
    segment_seconds: float = 1.0,
    seed: int = 0,
) -> list[tuple[str, float]]:
    """Encode a clip straight into HLS segments (keyframe every segment); return [(segment, duration)]."""
    out_dir.mkdir(parents=True, exist_ok=True)
    w, h = size
    out = av.open(
        str(out_dir / "vod.m3u8"),
        mode="w",
        format="hls",
        options={
            "hls_time": str(segment_seconds),
            "hls_playlist_type": "vod",
            "hls_segment_filename": str(out_dir / "seg%03d.ts"),
        },
    )
    st = out.add_stream("libx264", rate=fps)
    st.width, st.height, st.pix_fmt = w, h, "yuv420p"
    st.codec_context.gop_size = max(1, int(fps * segment_seconds))
    st.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency", "sc_threshold": "0"}
    ins = np.asarray(insert.convert("RGB").resize((w, h))) if insert is not None else None
    for i in range(int(seconds * fps)):
        t = i / fps
        arr = ins if ins is not None and insert_at[0] <= t < insert_at[1] else moving_frame(i, fps, w, h, seed)
        frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
        frame.pts, frame.time_base = i, Fraction(1, fps)
        for p in st.encode(frame):
            out.mux(p)
    for p in st.encode(None):
        out.mux(p)
    out.close()
    return read_playlist(out_dir / "vod.m3u8")


def read_playlist(path: Path) -> list[tuple[str, float]]:
    """The (segment file, duration) pairs of an HLS media playlist."""
    segs: list[tuple[str, float]] = []
    dur = 0.0
    for line in path.read_text().splitlines():
        if line.startswith("#EXTINF:"):
            dur = float(line[8:].split(",")[0])
        elif line and not line.startswith("#"):
            segs.append((line, dur))
    return segs


class LiveHLSServer:
    """Serves ``live.m3u8``: segment i appears when it would have finished recording (start + its end time).

    ``published_at(i)`` tells a test when segment i went out, to measure detection delay from there.
    ``broken`` segment indexes are served as garbage bytes (a corrupt stream the monitor must survive).
    Any path prefix serves the same stream (``/<k>/live.m3u8``): many viewers of one timeline.
    """

    def __init__(
        self,
        root: Path,
        segments: list[tuple[str, float]],
        *,
        window: int = 6,
        broken: set[int] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.root, self.segments, self.window = root, segments, window
        self.broken = broken or set()
        self.start = time.time()
        self.ends = list(np.cumsum([d for _, d in segments]))
        self.hits = 0  # requests served (egress tests check that a refused server saw none)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.hits += 1
                name = self.path.split("?")[0].rsplit("/", 1)[-1]  # /live.m3u8, or /<any prefix>/live.m3u8
                if name == "live.m3u8":
                    body = server.playlist().encode()
                    ctype = "application/vnd.apple.mpegurl"
                elif name in {s for s, _ in server.segments} and (server.root / name).exists():
                    idx = [s for s, _ in server.segments].index(name)
                    body = b"\x00garbage" * 4000 if idx in server.broken else (server.root / name).read_bytes()
                    ctype = "video/mp2t"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.httpd.server_address[0]}:{self.httpd.server_address[1]}/live.m3u8"

    def published_at(self, i: int) -> float:
        return self.start + float(self.ends[i])

    def playlist(self) -> str:
        elapsed = time.time() - self.start
        n = sum(1 for e in self.ends if e <= elapsed)
        n = max(n, 1)  # the first segment is there when the stream starts
        first = max(0, n - self.window)
        target = max(1, int(np.ceil(max(d for _, d in self.segments))))
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{target}", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
        for name, dur in self.segments[first:n]:
            lines += [f"#EXTINF:{dur:.3f},", name]
        if n == len(self.segments):
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    def __enter__(self) -> LiveHLSServer:
        self.start = time.time()
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class WebhookReceiver:
    """Records webhooks whose ``Safeguard-Signature`` verifies with ``secret``; counts the ones that do not."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.received: list[dict[str, Any]] = []
        self.rejected = 0
        self.event = threading.Event()
        rec = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                at = time.time()
                if not verify_signature(rec.secret, self.headers.get(SIGNATURE_HEADER, ""), body):
                    rec.rejected += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                rec.received.append({"at": at, "headers": dict(self.headers), "body": json.loads(body)})
                rec.event.set()
                self.send_response(204)
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    def wait_for(self, topic: str, timeout: float) -> dict[str, Any] | None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for r in self.received:
                if r["body"].get("type") == topic:
                    return r
            self.event.wait(0.05)
            self.event.clear()
        return None

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
