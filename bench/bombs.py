"""Decompression bombs against a real server: memory stays in the decode budget, normal uploads answered.

Generates benign bombs (flat or lightly patterned content, small files declaring huge images): the
red team's 10000x10000 lossless WebP, PNG and TIFF and a 7000x7000 MP4 of 20 s, plus our own set (a
10000x10000 GIF canvas, a 1-bit BMP, a GIF of many frames, a progressive JPEG at the pixel cap, a
10000x10000 RGBA PNG). Starts ``safeguard serve`` (2 workers, SQLite in a temporary directory,
default settings unless given), sends the bombs mixed with normal small uploads (JPEG and PNG) at
concurrency 8, waits for background video scans, and prints per input kind: count, status codes,
p50/p99 latency, and each worker's peak resident memory (VmHWM from /proc) against the budget.
Every normal upload must be answered 200 (the command exits 1 otherwise).

    python bench/bombs.py [--rounds 3] [--normal 160] [--concurrency 8] [--workers 2]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from tests.media_factory import encode, make_image  # noqa: E402

from bench._vault import vault_key  # noqa: E402
from bench.api_bench import child_pids  # noqa: E402
from safeguard.config import Settings  # noqa: E402

MIB = 1024 * 1024


def _save(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _mp4(size: int, seconds: int, fps: int = 5) -> bytes:
    buf = io.BytesIO()
    out = av.open(buf, mode="w", format="mp4")
    st = out.add_stream("libx264", rate=fps)
    st.width = st.height = size
    st.pix_fmt = "yuv420p"
    st.codec_context.gop_size = fps * 10
    st.codec_context.options = {"preset": "ultrafast", "crf": "40"}
    st.codec_context.time_base = Fraction(1, fps)
    frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), 90, np.uint8), format="rgb24").reformat(
        format="yuv420p"
    )
    for i in range(seconds * fps):
        frame.pts = i
        frame.time_base = Fraction(1, fps)
        for p in st.encode(frame):
            out.mux(p)
    for p in st.encode(None):
        out.mux(p)
    out.close()
    return buf.getvalue()


def _many_frames_gif(frames: int = 200, size: int = 2000) -> bytes:
    base = Image.new("P", (size, size), 0)
    base.putpalette([v for i in range(256) for v in (i, 255 - i, (i * 7) % 256)])
    seq = []
    for i in range(frames):
        f = base.copy()
        f.paste(
            i % 256, (i * 7 % (size - 64), i * 11 % (size - 64), i * 7 % (size - 64) + 64, i * 11 % (size - 64) + 64)
        )
        seq.append(f)
    return _save(seq[0], "GIF", save_all=True, append_images=seq[1:], duration=40, loop=0)


def bombs(cap: int) -> dict[str, bytes]:
    """The bomb files, by kind (each generated, benign: flat colour, a few patterns)."""
    side = 10000
    flat = Image.new("RGB", (side, side), (120, 130, 140))
    out = {
        "webp_lossless_10k": _save(flat, "WEBP", lossless=True, quality=0, method=0),
        "png_10k": _save(flat, "PNG", compress_level=9),
        "tiff_10k": _save(flat, "TIFF", compression="tiff_adobe_deflate"),
        "png_rgba_10k": _save(Image.new("RGBA", (side, side), (10, 200, 30, 128)), "PNG", compress_level=9),
        "gif_canvas_10k": _save(Image.new("P", (side, side), 3), "GIF"),
        "bmp_1bit_10k": _save(Image.new("1", (side, side), 1), "BMP"),
        "gif_200_frames": _many_frames_gif(),
    }
    jside = int(cap**0.5) // 16 * 16  # a progressive JPEG just under the pixel cap
    out["jpeg_progressive_cap"] = _save(Image.new("RGB", (jside, jside), (200, 100, 50)), "JPEG", progressive=True)
    out["mp4_7000_20s"] = _mp4(7000, 20)
    return out


def normals(n: int) -> list[tuple[str, bytes]]:
    """Ordinary uploads: 640x480 photo-like JPEGs and PNGs, distinct content."""
    out = []
    for i in range(n):
        im = make_image(i, (640, 480))
        out.append(("normal_jpeg", encode(im, "JPEG", quality=85)) if i % 2 else ("normal_png", encode(im, "PNG")))
    return out


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _workers(pid: int) -> list[int]:
    return [c for c in child_pids(pid) if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="copies of each bomb sent")
    ap.add_argument("--normal", type=int, default=160, help="normal small uploads sent among them")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds one request may take")
    args = ap.parse_args()

    settings = Settings.from_env()
    budget = settings.decode_memory_bytes
    t = time.perf_counter()
    files = bombs(settings.max_image_pixels)
    print(f"generated {len(files)} bomb kinds in {time.perf_counter() - t:.1f} s:")
    for kind, data in files.items():
        print(f"  {kind:24s} {len(data):>10,d} bytes")
    jobs: list[tuple[str, bytes]] = [(k, d) for k, d in files.items() for _ in range(args.rounds)] + normals(
        args.normal
    )
    random.Random(7).shuffle(jobs)

    with tempfile.TemporaryDirectory(prefix="sg-bombs-") as tmp:
        env = {
            **os.environ,
            "SAFEGUARD_DATA_DIR": tmp,
            "SAFEGUARD_VAULT_KEY_FILE": vault_key(tmp),
            "SAFEGUARD_LOG_LEVEL": "warning",
        }
        env.pop("SAFEGUARD_DATABASE_URL", None)
        key = subprocess.run(
            [sys.executable, "-m", "safeguard.cli", "keys", "create", "--role", "platform", "--name", "bombs"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "safeguard.cli", "serve", "--port", str(port), "--workers", str(args.workers)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if (
                        httpx.get(base + "/healthz", timeout=1).status_code == 200
                        and len(_workers(proc.pid)) == args.workers
                    ):
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            workers = _workers(proc.pid)
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=base, headers=headers, timeout=args.timeout) as warm:
                for kind, data in normals(4):  # every worker has imported and hashed once
                    warm.post("/v1/scan", files={"file": (kind, data)})
            idle_rss = {w: _status_kb(w, "VmRSS") // 1024 for w in workers}
            peak_rss: dict[int, int] = defaultdict(int)
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    for w in workers:
                        peak_rss[w] = max(peak_rss[w], _status_kb(w, "VmRSS") // 1024)
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            results: list[tuple[str, int | str, float, str]] = []
            pending: list[str] = []

            def send(job: tuple[str, bytes]) -> None:
                kind, data = job
                t0 = time.perf_counter()
                try:
                    with httpx.Client(base_url=base, headers=headers, timeout=args.timeout) as c:
                        r = c.post("/v1/scan", files={"file": (kind, data)})
                    code: int | str = r.status_code
                    detail = (
                        r.json().get("error", {}).get("code", "")
                        if r.status_code >= 400
                        else r.json().get("verdict") or ""
                    )
                    if r.status_code == 202:
                        pending.append(r.json()["id"])
                        detail = "pending"
                    if r.status_code == 503:
                        detail += f" retry-after={r.headers.get('retry-after')}"
                except httpx.HTTPError as exc:
                    code, detail = "error", type(exc).__name__
                results.append((kind, code, time.perf_counter() - t0, detail))

            t = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                list(pool.map(send, jobs))
            wall = time.perf_counter() - t
            background: Counter[str] = Counter()
            with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
                for decision_id in pending:
                    end = time.monotonic() + 300
                    while time.monotonic() < end:
                        body = c.get(f"/v1/decisions/{decision_id}").json()
                        if body.get("status", body.get("verdict")) != "pending":
                            break
                        time.sleep(0.5)
                    background[str(body.get("status") or body.get("verdict"))] += 1
            stop.set()
            sampler.join()
            hwm = {w: _status_kb(w, "VmHWM") // 1024 for w in workers}
            alive = proc.poll() is None and all(Path(f"/proc/{w}").exists() for w in workers)
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    by_kind: dict[str, list[tuple[int | str, float, str]]] = defaultdict(list)
    for kind, code, secs, detail in results:
        by_kind[kind].append((code, secs, detail))
    print(
        f"\n{len(jobs)} requests at concurrency {args.concurrency}, {args.workers} workers, decode budget "
        f"{budget // MIB} MiB, wait {settings.decode_wait_seconds:g} s; {wall:.1f} s wall"
    )
    print(f"{'kind':24s} {'n':>4s}  {'p50 s':>7s} {'p99 s':>7s}  status codes (error code or verdict)")
    for kind in sorted(by_kind):
        rows = by_kind[kind]
        lat = np.array([s for _, s, _ in rows])
        codes = Counter(f"{c} {d}".strip() for c, _, d in rows)
        print(
            f"{kind:24s} {len(rows):>4d}  {np.percentile(lat, 50):7.2f} {np.percentile(lat, 99):7.2f}  "
            + ", ".join(f"{k} x{v}" for k, v in sorted(codes.items()))
        )
    if background:
        print("background video scans: " + ", ".join(f"{k} x{v}" for k, v in background.items()))
    print("\nworker  idle RSS MiB  peak RSS MiB (sampled)  VmHWM MiB  budget MiB  limit MiB")
    for w in workers:
        print(f"{w:>6d}  {idle_rss[w]:>12d}  {peak_rss[w]:>22d}  {hwm[w]:>9d}  {budget // MIB:>10d}  {1024:>9d}")
    normal_ok = all(c == 200 for k, c, _, _ in results if k.startswith("normal"))
    fivexx = sum(1 for _, c, _, _ in results if isinstance(c, int) and c >= 500 and c != 503)
    print(f"\nnormal uploads all answered 200: {normal_ok}; 5xx other than 503: {fivexx}; server alive: {alive}")
    return 0 if normal_ok and fivexx == 0 and alive else 1


if __name__ == "__main__":
    sys.exit(main())
