"""Streams through the egress policy: refused at registration, and again at connect time (DNS
rebinding), on redirects, and per HLS segment; network failures answer nothing about the network.

Everything listens on loopback: 127.0.0.1 plays the allowed origin when a test lists it, 127.0.0.2
the internal service that must never be reached (tests count its requests)."""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from safeguard import egress
from safeguard.config import Settings
from safeguard.egress import EgressRefused, IPAddress
from safeguard.engine import Engine
from safeguard.errors import InvalidInput
from safeguard.workers.streams import UNREACHABLE, StreamConfig, StreamMonitor
from tests.streaming import LiveHLSServer, make_hls

FAST = StreamConfig(give_up_after=1.0, open_timeout=1.0, read_timeout=1.0)


@pytest.fixture
def strict(settings: Settings) -> Iterator[Engine]:
    """Default egress settings: nothing on loopback may be reached."""
    eng = Engine(settings.with_(egress_allow=""))
    yield eng
    eng.close()


@pytest.fixture
def origin_allowed(settings: Settings) -> Iterator[Engine]:
    """127.0.0.1 (the origin) is listed; 127.0.0.2 is not."""
    eng = Engine(settings.with_(egress_allow="127.0.0.1"))
    yield eng
    eng.close()


class Routes:
    """An HTTP server answering fixed routes: {path: (status, headers, body)}; counts requests."""

    def __init__(self, host: str, routes: dict[str, tuple[int, dict[str, str], bytes]]) -> None:
        self.routes = routes
        self.hits = 0
        me = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:
                me.hits += 1
                status, headers, body = me.routes.get(self.path, (404, {}, b""))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://{self.httpd.server_address[0]}:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def internal() -> Iterator[Routes]:
    """The internal service: a playlist and a segment on 127.0.0.2, which no test may reach."""
    srv = Routes("127.0.0.2", {})
    srv.routes["/live.m3u8"] = (200, {}, b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nseg000.ts\n#EXT-X-ENDLIST\n")
    srv.routes["/seg000.ts"] = (200, {}, b"\x47" * 188 * 10)
    yield srv
    srv.close()


def _watch(engine: Engine, url: str, cfg: StreamConfig = FAST) -> dict[str, Any]:
    mon = StreamMonitor(engine, cfg)
    return mon.wait(mon.watch(url, platform_stream_id="s").id, timeout=20).to_dict()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/live.m3u8",
        "https://10.0.0.5/live.m3u8",
        "http://169.254.169.254/latest/meta-data/",
        "http://2130706433/live.m3u8",  # 127.0.0.1 as one decimal integer
        "http://0x7f.1/live.m3u8",
        "http://017700000001/live.m3u8",
        "http://[::ffff:127.0.0.1]/live.m3u8",
        "http://[::1]:8080/live.m3u8",
        "http://[fd00:ec2::254]/",
        "HTTP://192.168.1.1/live.m3u8",
        "rtmp://100.64.0.1/live/key",
        "rtmp://127.0.0.1./live/key",
    ],
)
def test_internal_addresses_are_refused_at_registration(strict: Engine, url: str) -> None:
    with pytest.raises(EgressRefused) as exc:
        StreamMonitor(strict, FAST).watch(url, platform_stream_id="s")
    assert exc.value.code == "egress_refused" and "SAFEGUARD_EGRESS_ALLOW" in exc.value.message


def test_names_resolving_to_internal_addresses_are_refused_at_registration(
    strict: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(egress, "resolve", lambda host, port: [ipaddress.ip_address("10.1.2.3")])
    with pytest.raises(EgressRefused) as exc:
        StreamMonitor(strict, FAST).watch("https://origin.example/live.m3u8", platform_stream_id="s")
    assert exc.value.message == (
        "address 10.1.2.3 of host origin.example is in a private range and not in SAFEGUARD_EGRESS_ALLOW"
    )


@pytest.mark.parametrize(
    "url", ["rtsp://cam.example/stream", "srt://x.example:9000", "file:///etc/passwd", "gopher://x"]
)
def test_schemes_the_policy_cannot_follow_are_refused(strict: Engine, url: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        StreamMonitor(strict, FAST).watch(url, platform_stream_id="s")
    assert exc.value.code == "invalid_stream_url"


def test_dns_rebinding_is_refused_at_connect(tmp_path: Path, strict: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """live.test answers a public address at registration, loopback when the watcher connects."""
    answers: list[list[IPAddress]] = [[ipaddress.ip_address("93.184.216.34")], [ipaddress.ip_address("127.0.0.1")]]
    monkeypatch.setattr(egress, "resolve", lambda host, port: answers.pop(0))
    segs = make_hls(tmp_path / "hls", seconds=2)
    with LiveHLSServer(tmp_path / "hls", segs) as srv:
        state = _watch(strict, srv.url.replace("127.0.0.1", "live.test"))
        assert srv.hits == 0
    assert state["status"] == "failed" and state["frames_sampled"] == 0
    assert state["error"] == (
        "egress_refused: address 127.0.0.1 of host live.test is in a loopback range and not in SAFEGUARD_EGRESS_ALLOW"
    )


def test_the_watcher_connects_to_the_address_it_checked(
    tmp_path: Path, origin_allowed: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pinning: origin.test is in no DNS; the stream is read only because the checked address is used."""
    calls: list[str] = []

    def fake(host: str, port: int) -> list[IPAddress]:
        calls.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(egress, "resolve", fake)
    segs = make_hls(tmp_path / "hls", seconds=3)
    with LiveHLSServer(tmp_path / "hls", segs) as srv:
        state = _watch(origin_allowed, srv.url.replace("127.0.0.1", "origin.test"), StreamConfig(give_up_after=10))
    assert state["status"] == "ended", state
    assert state["frames_sampled"] >= 2
    assert set(calls) == {"origin.test"}


def test_redirects_are_checked(origin_allowed: Engine, internal: Routes) -> None:
    origin = Routes(
        "127.0.0.1",
        {
            "/to-internal.m3u8": (302, {"Location": internal.url("/live.m3u8")}, b""),
            "/to-metadata": (301, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
            "/to-decimal": (307, {"Location": "http://2130706434/live.m3u8"}, b""),  # 127.0.0.2
            "/to-file": (302, {"Location": "file:///etc/passwd"}, b""),
        },
    )
    try:
        got = {p: _watch(origin_allowed, origin.url(p)) for p in origin.routes}
    finally:
        origin.close()
    assert internal.hits == 0
    for path, state in got.items():
        assert state["status"] == "failed" and state["error"].startswith("egress_refused: "), (path, state)
    assert "address 127.0.0.2 is in a loopback range" in got["/to-internal.m3u8"]["error"]
    assert "169.254.169.254 is cloud metadata" in got["/to-metadata"]["error"]
    assert "address 127.0.0.2 is in a loopback range" in got["/to-decimal"]["error"]
    assert "file" in got["/to-file"]["error"]


def test_hls_segments_and_variants_on_refused_hosts_are_refused(origin_allowed: Engine, internal: Routes) -> None:
    seg = internal.url("/seg000.ts")
    origin = Routes(
        "127.0.0.1",
        {
            "/media.m3u8": (
                200,
                {"Content-Type": "application/vnd.apple.mpegurl"},
                f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{seg}\n#EXT-X-ENDLIST\n".encode(),
            ),
            "/master.m3u8": (
                200,
                {},
                f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100000\n{internal.url('/live.m3u8')}\n".encode(),
            ),
            "/init.m3u8": (
                200,
                {},
                f'#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MAP:URI="{seg}"\n#EXTINF:1,\nseg.ts\n#EXT-X-ENDLIST\n'.encode(),
            ),
        },
    )
    try:
        got = {p: _watch(origin_allowed, origin.url(p)) for p in origin.routes}
    finally:
        origin.close()
    assert internal.hits == 0
    for path, state in got.items():
        assert state["status"] == "failed", (path, state)
        assert state["error"] == (
            "egress_refused: address 127.0.0.2 is in a loopback range and not in SAFEGUARD_EGRESS_ALLOW"
        ), path


def test_network_failures_all_look_the_same(origin_allowed: Engine) -> None:
    """Closed port, a server that never answers, an HTTP error, garbage bytes: one generic answer."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
    stalled = socket.socket()
    stalled.bind(("127.0.0.1", 0))
    stalled.listen(8)
    web = Routes("127.0.0.1", {"/garbage": (200, {}, b"SSH-2.0-OpenSSH_9.6\r\n" * 50)})
    try:
        urls = [
            f"http://127.0.0.1:{closed_port}/live.m3u8",
            f"http://127.0.0.1:{stalled.getsockname()[1]}/live.m3u8",
            web.url("/missing.m3u8"),
            web.url("/garbage"),
        ]
        errors = [_watch(origin_allowed, u)["error"] for u in urls]
    finally:
        web.close()
        stalled.close()
    assert {re.sub(r"after \d+s", "after Ns", e) for e in errors} == {
        f"gave up after Ns without frames; last error: {UNREACHABLE}"
    }, errors


def test_rtmp_dns_rebinding_is_refused_at_connect(strict: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """RTMP is resolved and checked by Safeguard; FFmpeg is never given the name (nor the refused address)."""
    import select

    answers: list[list[IPAddress]] = [[ipaddress.ip_address("93.184.216.34")], [ipaddress.ip_address("127.0.0.1")]]
    monkeypatch.setattr(egress, "resolve", lambda host, port: answers.pop(0))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        state = _watch(strict, f"rtmp://live.test:{listener.getsockname()[1]}/live/key")
        assert select.select([listener], [], [], 0.2)[0] == []  # nobody connected
    assert state["status"] == "failed"
    assert state["error"] == (
        "egress_refused: address 127.0.0.1 of host live.test is in a loopback range and not in SAFEGUARD_EGRESS_ALLOW"
    )


def test_a_server_dripping_bytes_cannot_hold_a_watcher(origin_allowed: Engine) -> None:
    """Each read gets a byte in time, no frame ever comes: the watch fails after give_up_after."""
    import time

    stop = threading.Event()

    class Drip(BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            while not stop.is_set():
                try:
                    self.wfile.write(b"\x00")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.05)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        t0 = time.monotonic()
        state = _watch(origin_allowed, f"http://127.0.0.1:{httpd.server_address[1]}/drip.ts")
        took = time.monotonic() - t0
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()
    assert state["status"] == "failed" and state["error"].endswith(UNREACHABLE)
    assert took < 10


def test_byte_range_playlist_from_a_server_that_ignores_range(tmp_path: Path, origin_allowed: Engine) -> None:
    """EXT-X-BYTERANGE segments of one file; the server answers 200 with the whole file every time. The
    file starts with a clip showing a banked image that no range covers: it must never be read."""
    from safeguard.banks import BankService
    from safeguard.signals.pdq import pdq_hex
    from tests.videogen import benign_image

    img = benign_image(31)
    BankService(origin_allowed.db).create("known", actor="t", kind="csam")
    BankService(origin_allowed.db).add_entry("known", signal_type="pdq", value=pdq_hex(img)[0], actor="t")
    decoy = make_hls(tmp_path / "decoy", seconds=2, insert=img, insert_at=(0.0, 2.0))  # type: ignore[arg-type]
    blob = b"".join((tmp_path / "decoy" / n).read_bytes() for n, _ in decoy)
    segs = make_hls(tmp_path / "hls", seconds=3, seed=3)
    lines, offset = ["#EXTM3U", "#EXT-X-TARGETDURATION:1", "#EXT-X-VERSION:4"], len(blob)
    for name, dur in segs:
        data = (tmp_path / "hls" / name).read_bytes()
        lines += [f"#EXTINF:{dur:.3f},", f"#EXT-X-BYTERANGE:{len(data)}@{offset}", "all.ts"]
        blob, offset = blob + data, offset + len(data)
    lines.append("#EXT-X-ENDLIST")
    srv = Routes("127.0.0.1", {"/v.m3u8": (200, {}, "\n".join(lines).encode()), "/all.ts": (200, {}, blob)})
    try:
        state = _watch(origin_allowed, srv.url("/v.m3u8"), StreamConfig(give_up_after=5))
    finally:
        srv.close()
    assert state["status"] == "ended" and state["findings"] == [], state
    assert state["frames_sampled"] >= 3
    assert srv.hits == 1 + len(segs)
