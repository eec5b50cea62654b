"""Streams and video benchmarks, each beside its target or reference. Prints a table.

1. capacity: concurrent 720p 30 fps H.264 streams one core watches at 1 frame/s (target >= 20).
   The process is pinned to one core; each stream is a local file read at 1x (as a live stream
   arrives), decoded keyframes-only (GOP 1 s) and hashed at 512 px. Reported: CPU use of the one
   core and whether every stream kept up (sampled >= 90 % of the frames due).
2. delay: from the moment the HLS segment holding the first matching frame is published on a
   loopback live HLS server, to the signed stream.terminate webhook arriving at a loopback
   receiver (target <= 2 s at the default 1 frame/s).
3. upload hashing: seconds of video hashed per second of wall time, Safeguard (PyAV + pdqhash) vs
   the reference ``vpdq`` library on the same files, and how many frame hashes are identical.

    python bench/streams_bench.py [--quick]

The build machine is shared: ``uptime`` load is printed beside the numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402
from tests.streaming import LiveHLSServer, WebhookReceiver, make_hls, read_playlist  # noqa: E402
from tests.videogen import benign_image  # noqa: E402

from safeguard.banks import BankService  # noqa: E402
from safeguard.config import Settings  # noqa: E402
from safeguard.engine import Engine  # noqa: E402
from safeguard.media.video import hash_video  # noqa: E402
from safeguard.signals.base import hamming_hex  # noqa: E402
from safeguard.signals.pdq import pdq_hex  # noqa: E402
from safeguard.workers.streams import StreamConfig, StreamMonitor  # noqa: E402

OUT = ROOT / "bench" / "out"


def load() -> str:
    return open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"


def make_720p(
    path: Path, seconds: float, fps: int = 30, gop: int = 30, codec: str = "libx264", fmt: str = "mp4"
) -> Path:
    """A 720p clip with real motion (a panning textured gradient), cached in bench/out."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = 1280, 720
    rng = np.random.default_rng(0)
    tex = rng.integers(0, 255, (h, w * 2, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0 : w * 2]
    base = ((xx[..., None] * [1, 2, 3] + yy[..., None] * [3, 1, 2]) % 256).astype(np.uint8)
    big = (base // 2 + tex // 4).astype(np.uint8)
    out = av.open(str(path), "w", format=fmt)
    st = out.add_stream(codec, rate=fps)
    st.width, st.height, st.pix_fmt = w, h, "yuv420p"
    st.codec_context.gop_size = gop
    if codec == "libx264":
        st.codec_context.options = {"preset": "ultrafast", "sc_threshold": "0"}
    else:
        st.codec_context.options = {"deadline": "realtime", "cpu-used": "8"}
    for i in range(int(seconds * fps)):
        x = (i * 7) % w
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(big[:, x : x + w]), format="rgb24")
        frame.pts, frame.time_base = i, Fraction(1, fps)
        for p in st.encode(frame):
            out.mux(p)
    for p in st.encode(None):
        out.mux(p)
    out.close()
    return path


def engine_in(tmp: Path, **kw: object) -> Engine:
    # the benchmark's HLS servers and webhook receiver are on loopback: listed for the egress policy
    kw.setdefault("egress_allow", "127.0.0.1")
    kw.setdefault("streams_max_total", 0)
    return Engine(Settings(data_dir=str(tmp / "var"), run_worker=False, index_refresh_seconds=0.5, **kw))  # type: ignore[arg-type]


def bench_capacity(counts: list[int], seconds: float) -> list[tuple[str, str, str]]:
    clip = make_720p(OUT / "720p30_gop30.mp4", seconds=seconds + 5)
    rows = []
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        pinned = "pinned to 1 core"
    except (AttributeError, OSError):
        pinned = "not pinned"
    for n in counts:
        with tempfile.TemporaryDirectory() as d:
            eng = engine_in(Path(d))
            b = BankService(eng.db)
            b.create("known", actor="bench", kind="csam")
            b.add_entry("known", signal_type="pdq", value=pdq_hex(benign_image(99))[0], actor="bench")
            mon = StreamMonitor(eng, StreamConfig(allow_files=True, persist_seconds=5.0))
            c0, w0 = time.process_time(), time.monotonic()
            ids = [mon.watch(str(clip), platform_stream_id=f"s{k}").id for k in range(n)]
            time.sleep(seconds)
            cpu, wall = time.process_time() - c0, time.monotonic() - w0
            states = [mon.get(i) for i in ids]
            mon.shutdown()
            eng.close()
        due = int(wall)  # one frame per second of stream, from t=0
        sampled = [s.frames_sampled for s in states]
        kept = sum(1 for s in sampled if s >= 0.9 * due)
        util = cpu / wall
        rows.append(
            (
                f"capacity: {n} streams 720p30, 1 frame/s ({pinned})",
                f"core busy {100 * util:.0f}%, {kept}/{n} kept up, frames/stream min {min(sampled)} of {due}",
                f"≈{n / max(util, 1e-9):.0f} streams/core at 100% (target ≥ 20); load {load()}",
            )
        )
    return rows


def _serve_hls(root: str, segs: list[tuple[str, float]], conn: object) -> None:
    """Child process: a live HLS server (not pinned with the monitor), until the parent closes the pipe."""
    with LiveHLSServer(Path(root), segs) as srv:
        conn.send(srv.url)  # type: ignore[attr-defined]
        conn.recv()  # type: ignore[attr-defined]


def bench_capacity_hls(counts: list[int], seconds: float) -> list[tuple[str, str, str]]:
    """Like bench_capacity, but every stream is fetched as live HLS over loopback HTTP (server in another process)."""
    import multiprocessing as mp

    root = OUT / "hls720"
    if not (root / "vod.m3u8").exists():
        _remux_hls(make_720p(OUT / "720p30_gop30.mp4", seconds=seconds + 5), root)
    segs = _read_vod(root)
    rows = []
    cpus = sorted(os.sched_getaffinity(0))
    for n in counts:
        parent, child = mp.Pipe()
        proc = mp.get_context("fork").Process(target=_serve_hls, args=(str(root), segs, child), daemon=True)
        proc.start()
        base = parent.recv().rsplit("/", 1)[0]
        os.sched_setaffinity(0, {cpus[0]})
        try:
            with tempfile.TemporaryDirectory() as d:
                eng = engine_in(Path(d))
                mon = StreamMonitor(eng, StreamConfig(persist_seconds=5.0))
                c0, w0 = time.process_time(), time.monotonic()
                ids = [mon.watch(f"{base}/{k}/live.m3u8", platform_stream_id=f"h{k}").id for k in range(n)]
                time.sleep(seconds)
                cpu, wall = time.process_time() - c0, time.monotonic() - w0
                states = [mon.get(i) for i in ids]
                mon.shutdown()
                eng.close()
        finally:
            os.sched_setaffinity(0, set(cpus))
            parent.send("stop")
            proc.join(timeout=10)
        sampled = [s.frames_sampled for s in states]
        due = int(wall) - 2  # live HLS starts about a segment behind
        kept = sum(1 for s in sampled if s >= 0.9 * due)
        util = cpu / wall
        rows.append(
            (
                f"capacity: {n} live HLS streams 720p30 over HTTP, 1 frame/s (monitor pinned to 1 core)",
                f"core busy {100 * util:.0f}%, {kept}/{n} kept up, frames/stream min {min(sampled)} of ~{due}",
                f"≈{n / max(util, 1e-9):.0f} streams/core at 100% (target ≥ 20); load {load()}",
            )
        )
    return rows


def _remux_hls(src: Path, root: Path) -> None:
    """The capacity clip, unchanged (same bitrate), cut into 1 s HLS segments at its keyframes."""
    root.mkdir(parents=True, exist_ok=True)
    with av.open(str(src)) as inp:
        vs = inp.streams.video[0]
        opts = {"hls_time": "1", "hls_playlist_type": "vod", "hls_segment_filename": str(root / "seg%03d.ts")}
        with av.open(str(root / "vod.m3u8"), "w", format="hls", options=opts) as out:
            os_ = out.add_stream_from_template(vs)
            for pkt in inp.demux(vs):
                if pkt.dts is None:
                    continue
                pkt.stream = os_
                out.mux(pkt)


def _read_vod(root: Path) -> list[tuple[str, float]]:
    return read_playlist(root / "vod.m3u8")


def bench_delay(trials: int, size: tuple[int, int], fps: int, background: int = 0) -> list[tuple[str, str, str]]:
    """``background`` other 720p30 streams are watched by the same monitor meanwhile (a loaded process)."""
    clip = make_720p(OUT / "720p30_gop30.mp4", seconds=25) if background else None
    delays = []
    for k in range(trials):
        with tempfile.TemporaryDirectory() as d, WebhookReceiver("bench") as hook:
            dd = Path(d)
            img = benign_image(50 + k)
            at = 3.0 + k % 3
            segs = make_hls(dd / "hls", seconds=at + 4, fps=fps, size=size, insert=img, insert_at=(at, at + 3))
            eng = engine_in(dd, webhook_url=hook.url, webhook_secret="bench")
            b = BankService(eng.db)
            b.create("known", actor="bench", kind="csam")
            b.add_entry("known", signal_type="pdq", value=pdq_hex(img)[0], actor="bench")
            mon = StreamMonitor(eng, StreamConfig(give_up_after=15, allow_files=True))
            for j in range(background):
                mon.watch(str(clip), platform_stream_id=f"bg-{j}")
            with LiveHLSServer(dd / "hls", segs) as srv:
                st = mon.watch(srv.url, platform_stream_id=f"live-{k}")
                got = hook.wait_for("stream.terminate", timeout=30)
                if got is not None:
                    delays.append(got["at"] - srv.published_at(int(at)))
                mon.stop(st.id)
            mon.shutdown()
            eng.close()
    if not delays:
        return [("delay", "no webhook arrived", "")]
    return [
        (
            f"delay: first matching frame published → stream.terminate received ({size[1]}p{fps} HLS, 1 s segments"
            + (f", monitor also watching {background} 720p30 streams)" if background else ")"),
            f"median {statistics.median(delays):.2f}s, min {min(delays):.2f}s, max {max(delays):.2f}s over {len(delays)}/{trials}",
            f"target ≤ 2 s; load {load()}",
        )
    ]


def bench_upload(seconds: float) -> list[tuple[str, str, str]]:
    rows = []
    try:
        import vpdq
    except ImportError:
        vpdq = None
    files = [
        (
            "720p30 H.264 (keyframe every 2 s)",
            make_720p(OUT / f"up_720p30_{seconds:.0f}s.mp4", seconds=seconds, gop=60),
        ),
        (
            "720p30 VP9/WebM (keyframe every 2 s)",
            make_720p(
                OUT / f"up_720p30_{seconds / 2:.0f}s.webm", seconds=seconds / 2, gop=60, codec="libvpx-vp9", fmt="webm"
            ),
        ),
    ]
    for label, path in files:
        with av.open(str(path)) as c:
            dur = float(c.duration or 0) / 1e6
        t = time.perf_counter()
        ours = hash_video(str(path))
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        kf = hash_video(str(path), mode="keyframes")
        t_kf = time.perf_counter() - t
        ref_text = "vpdq not installed"
        same = ""
        if vpdq is not None:
            t = time.perf_counter()
            ref = vpdq.computeHash(str(path), seconds_per_hash=1.0)
            t_ref = time.perf_counter() - t
            ref_text = f"vpdq library {dur / t_ref:.1f} s/s"
            eq = sum(1 for a, b in zip(ours, ref, strict=False) if hamming_hex(a.value, b.hex) == 0)
            same = f"; identical frame hashes {eq}/{len(ref)}"
        rows.append(
            (
                f"upload hashing: {label}, {dur:.0f} s, 1 frame/s",
                f"Safeguard {dur / t_ours:.1f} s/s, {len(ours)} frames (keyframes-only {dur / t_kf:.1f} s/s, {len(kf)} frames)",
                f"{ref_text}{same}; load {load()}",
            )
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer streams and trials")
    ap.add_argument("--only", choices=["upload", "delay", "capacity", "hls"], help="run one part")
    args = ap.parse_args()
    rows: list[tuple[str, str, str]] = []
    part = args.only
    if part in (None, "upload"):
        rows += bench_upload(20 if not args.quick else 10)
    if part in (None, "delay"):
        rows += bench_delay(3 if args.quick else 5, (1280, 720), 30)
        rows += bench_delay(2 if args.quick else 3, (1280, 720), 30, background=20)
    if part in (None, "capacity"):
        rows += bench_capacity([10, 20] if args.quick else [10, 20, 30], 15 if args.quick else 20)
    if part in (None, "hls"):
        rows += bench_capacity_hls([20] if args.quick else [20, 30], 15 if args.quick else 20)
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"{'measure':<{w0}}  {'result':<{w1}}  reference / target")
    print("-" * (w0 + w1 + 40))
    for a, b, c in rows:
        print(f"{a:<{w0}}  {b:<{w1}}  {c}")


if __name__ == "__main__":
    main()
