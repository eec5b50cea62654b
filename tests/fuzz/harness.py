"""The fuzzing harness, shared by the CI fuzz tests (``tests/fuzz/test_*.py``) and the longer run
(``bench/fuzz.py``): a target app with a key per role and a bank to match against, benign seed media of
every supported type, mutators, and the one check every answer must pass.

The check: no 5xx, and every error is JSON ``{"error": {"code": <str>, ...}}``. A request may be refused
for any reason (that is most of what fuzzing sends); what it may not do is crash the service, answer in
plain text, or take seconds.

Nothing here touches the network: the app runs in process (Starlette's test client), and stream
registration (``POST /v1/streams``, which makes FFmpeg open the URL) is left out of the OpenAPI fuzz.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from safeguard.api import create_app
from safeguard.banks import BankService
from safeguard.config import Settings
from safeguard.engine import Engine
from safeguard.keys import KeyService
from tests.media_factory import image_bytes
from tests.videogen import make_video

IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")
VIDEO_FORMATS = ("MP4", "WEBM")
MEDIA_FORMATS = IMAGE_FORMATS + VIDEO_FORMATS

#: operations the OpenAPI fuzz leaves out: registering a stream makes FFmpeg open the URL it names
#: (the network; the egress policy is tested on its own)
NOT_FUZZED = {("POST", "/v1/streams")}


def seed_media() -> dict[str, bytes]:
    """One small benign file per supported type (images 64x48; videos 2 s, 10 fps, 96x64)."""
    out = {fmt: image_bytes(7, fmt, size=(64, 48)) for fmt in IMAGE_FORMATS}
    out["MP4"] = make_video(seconds=2, fps=10, size=(96, 64), codec="libx264", fmt="mp4")
    out["WEBM"] = make_video(seconds=2, fps=10, size=(96, 64), codec="libvpx-vp9", fmt="webm")
    return out


# -- mutators ----------------------------------------------------------------------------------------
#: byte strings that begin header fields worth aiming at: image headers and chunks, MP4 boxes, EBML
MARKERS = (
    b"IHDR",
    b"IDAT",
    b"acTL",
    b"\xff\xc0",
    b"\xff\xc4",
    b"\xff\xda",
    b"\xff\xe1",
    b"GIF8",
    b"NETSCAPE",
    b"VP8 ",
    b"VP8L",
    b"VP8X",
    b"ANIM",
    b"BM",
    b"II*\x00",
    b"ftyp",
    b"moov",
    b"mvhd",
    b"tkhd",
    b"mdhd",
    b"hdlr",
    b"stsd",
    b"avc1",
    b"avcC",
    b"stts",
    b"stsz",
    b"stco",
    b"mdat",
    b"\x1a\x45\xdf\xa3",
    b"\x18\x53\x80\x67",
    b"\x16\x54\xae\x6b",
    b"\xa3",
)
BOUNDARY_VALUES = (
    b"\x00\x00\x00\x00",
    b"\x00\x00\x00\x01",
    b"\x7f\xff\xff\xff",
    b"\x80\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"\x00\x00",
    b"\xff\xff",
    b"\x7f\xff",
    b"\x01",
    b"\xff",
)


def _flip_bytes(d: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 8)):
        d[rng.randrange(len(d))] = rng.randrange(256)


def _flip_bits(d: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 16)):
        d[rng.randrange(len(d))] ^= 1 << rng.randrange(8)


def _truncate(d: bytearray, rng: random.Random) -> None:
    if len(d) > 1:
        del d[rng.randrange(1, len(d)) :]


def _insert(d: bytearray, rng: random.Random) -> None:
    i = rng.randrange(len(d) + 1)
    d[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))


def _delete_span(d: bytearray, rng: random.Random) -> None:
    i = rng.randrange(len(d))
    del d[i : i + rng.randint(1, 64)]


def _duplicate_span(d: bytearray, rng: random.Random) -> None:
    i = rng.randrange(len(d))
    span = d[i : i + rng.randint(1, 256)]
    j = rng.randrange(len(d) + 1)
    d[j:j] = span


def _header_field(d: bytearray, rng: random.Random) -> None:
    """Overwrite a few bytes just after a known header marker (sizes, dimensions, counts, durations)
    with a boundary value; at the start of the file when no marker is present."""
    found = [m for m in MARKERS if m in d]
    if found:
        m = rng.choice(found)
        starts = [k for k in range(len(d)) if d.startswith(m, k)][:50]
        base = rng.choice(starts) + len(m)
    else:
        base = 0
    off = min(len(d) - 1, base + rng.randrange(0, 24))
    v = rng.choice(BOUNDARY_VALUES)
    d[off : off + len(v)] = v


def _size_field(d: bytearray, rng: random.Random) -> None:
    """Change the 4-byte size field in front of an MP4 box or PNG chunk type (the bytes before it)."""
    found = [m for m in MARKERS if len(m) == 4 and d.find(m) >= 4]
    if not found:
        _header_field(d, rng)
        return
    k = d.find(rng.choice(found))
    d[k - 4 : k] = rng.choice(BOUNDARY_VALUES[:5])


MUTATORS: dict[str, Callable[[bytearray, random.Random], None]] = {
    "flip_bytes": _flip_bytes,
    "flip_bits": _flip_bits,
    "truncate": _truncate,
    "insert": _insert,
    "delete_span": _delete_span,
    "duplicate_span": _duplicate_span,
    "header_field": _header_field,
    "size_field": _size_field,
}


def mutate(data: bytes, rng: random.Random, rounds: int | None = None) -> tuple[list[str], bytes]:
    """``data`` after one to three random mutations (the mutators' names, and the bytes)."""
    d = bytearray(data)
    names = []
    for _ in range(rounds or rng.choice((1, 1, 1, 2, 3))):
        if not d:
            break
        name = rng.choice(list(MUTATORS))
        MUTATORS[name](d, rng)
        names.append(name)
    return names, bytes(d)


# -- the target --------------------------------------------------------------------------------------
@dataclass
class FuzzTarget:
    """An app on a fresh SQLite database with one key per role and a bank holding one entry of each
    signal type (so that fuzzed scans reach the matching code, not only the parsers)."""

    client: TestClient
    engine: Engine
    keys: dict[str, str]
    bank: str = "fuzz"
    entry_ids: list[int] = field(default_factory=list)

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@contextmanager
def fuzz_target(data_dir: Path | None = None, **overrides: Any) -> Iterator[FuzzTarget]:
    with tempfile.TemporaryDirectory(prefix="sg-fuzz-") as tmp:
        root = data_dir or Path(tmp)
        settings = Settings(
            data_dir=str(root / "data"),
            database_url=f"sqlite:///{root / 'fuzz.db'}",
            run_worker=False,
            index_refresh_seconds=0.0,
            log_level="error",
            egress_allow="127.0.0.1",  # the webhook endpoint the fuzzed bodies register (never delivered to)
            **overrides,
        )
        engine = Engine(settings)
        ks = KeyService(engine.db)
        keys = {
            r: ks.create(r, f"fuzz-{r}", actor="fuzz")["key"] for r in ("platform", "moderator", "admin", "auditor")
        }
        banks = BankService(engine.db)
        banks.create("fuzz", actor="fuzz", default_category="A1")
        ids = [
            banks.add_entry("fuzz", signal_type=t, value=v, actor="fuzz").id
            for t, v in (
                ("pdq", "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"),
                ("md5", "d41d8cd98f00b204e9800998ecf8427e"),
            )
        ]
        app = create_app(settings, engine=engine)
        with TestClient(app, raise_server_exceptions=False) as client:
            yield FuzzTarget(client, engine, keys, entry_ids=ids)
        engine.close()


def role_for(method: str, path: str) -> str:
    """The role an operation admits (besides admin), so fuzzed requests get past the role check."""
    m = method.upper()
    if path.startswith(("/v1/scan", "/v1/conversations", "/v1/streams", "/v1/decisions")):
        return "platform"
    if path.startswith("/v1/events"):
        return "auditor"
    if path.startswith(("/v1/entries", "/v1/cases")) or (path.startswith("/v1/banks") and m == "GET"):
        return "moderator"
    if path == "/v1/banks/{bank}/entries" and m == "POST":
        return "moderator"
    return "admin"


#: answers that are not JSON by design
TEXT_ENDPOINTS = ("/metrics", "/v1/banks/{bank}/export")


def problems(status: int, content_type: str | None, body: bytes, *, text_ok: bool = False) -> list[str]:
    """What is wrong with an answer ([] when nothing): a 5xx, or an error that is not the API's JSON."""
    out = []
    if status >= 500:
        out.append(f"status {status}")
    if status == 204:
        return out
    if status >= 400 or not text_ok:
        if not (content_type or "").startswith("application/json"):
            out.append(f"content type {content_type!r}")
        else:
            try:
                doc = json.loads(body)
            except ValueError:
                out.append("body is not JSON")
            else:
                if status >= 400 and not (
                    isinstance(doc, dict)
                    and isinstance(doc.get("error"), dict)
                    and isinstance(doc["error"].get("code"), str)
                ):
                    out.append(f"error body without a code: {body[:200]!r}")
    return out


# -- the OpenAPI fuzz ---------------------------------------------------------------------------------
@dataclass
class Tally:
    """What a fuzz run saw: inputs tried and answers by status, per target; and each problem found."""

    tried: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)
    found: list[dict[str, Any]] = field(default_factory=list)
    slow: list[dict[str, Any]] = field(default_factory=list)
    slowest: float = 0.0

    def record(self, name: str, status: int, bad: list[str], seconds: float, what: Any, slow_after: float) -> None:
        self.tried[name] = self.tried.get(name, 0) + 1
        self.slowest = max(self.slowest, seconds)
        by = self.statuses.setdefault(name, {})
        by[status] = by.get(status, 0) + 1
        if bad:
            self.found.append({"target": name, "status": status, "problems": bad, "input": repr(what)[:500]})
        if seconds > slow_after:
            self.slow.append({"target": name, "seconds": round(seconds, 2), "input": repr(what)[:300]})


def openapi_operations(t: FuzzTarget) -> list[Any]:
    """The app's operations as schemathesis sees them (from the app's own OpenAPI document)."""
    import schemathesis

    schema = schemathesis.openapi.from_dict(t.client.app.openapi())  # type: ignore[attr-defined]
    ops = [r.ok() for r in schema.get_all_operations()]
    return [op for op in ops if (op.method.upper(), op.path) not in NOT_FUZZED]


def known_path_values(t: FuzzTarget) -> dict[str, Any]:
    """Path parameters that exist in the target, so generated requests also reach past the lookup."""
    return {"bank": t.bank, "entry_id": t.entry_ids[0], "case_id": 1, "webhook_id": 1}


def fuzz_operation(
    t: FuzzTarget,
    op: Any,
    tally: Tally,
    *,
    examples: int,
    seed: int,
    negative: bool = False,
    known_paths: bool = False,
    slow_after: float = 10.0,
) -> None:
    """``examples`` generated requests for one operation (schemathesis + hypothesis), each checked
    with :func:`problems` and recorded in ``tally`` (never raised: a run reports every problem)."""
    import time

    from hypothesis import HealthCheck, Phase, given
    from hypothesis import seed as hseed
    from hypothesis import settings as hsettings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    mode = GenerationMode.NEGATIVE if negative else GenerationMode.POSITIVE
    names = {p.name for p in op.path_parameters} if known_paths else set()
    fixed = {k: v for k, v in known_path_values(t).items() if k in names} or None
    strategy = op.as_strategy(generation_mode=mode, path_parameters=fixed)
    name = f"openapi {op.method.upper()} {op.path}"
    headers = t.headers(role_for(op.method, op.path))
    text_ok = op.path in TEXT_ENDPOINTS

    @hsettings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hseed(seed)
    @given(case=strategy)
    def run(case: Any) -> None:
        kw = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
        data = kw.pop("data", None)
        if isinstance(data, bytes | str):
            kw["content"] = data
        elif data is not None:
            kw["data"] = data
        kw.pop("cookies", None)
        if kw.get("files"):
            kw["files"] = _renderable_files(kw["files"])
        t0 = time.perf_counter()
        r = t.client.request(**kw)
        took = time.perf_counter() - t0
        bad = problems(r.status_code, r.headers.get("content-type"), r.content, text_ok=text_ok)
        tally.record(name, r.status_code, bad, took, kw, slow_after)

    try:
        run()
    except Unsatisfiable:  # nothing in the operation to get wrong (no parameters, no body): no negative case
        if not negative:
            raise


def _renderable_files(files: Any) -> list[tuple[str, Any]]:
    """Multipart parts as the HTTP client can send them: a generated part's content may be a number or
    an object, which httpx cannot render (it fails inside the test client, not in the app)."""
    items = files.items() if isinstance(files, dict) else files
    out = []
    for name, part in items:
        if isinstance(part, tuple):
            filename, content, *rest = part
            if not isinstance(content, bytes | str):
                content = json.dumps(content, default=str)
            out.append((name, (filename, content, *rest)))
        else:
            out.append((name, part if isinstance(part, bytes | str) else json.dumps(part, default=str)))
    return out


# -- JSON bodies -------------------------------------------------------------------------------------
def json_endpoints(t: FuzzTarget) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(method, path, role, a valid body) for every endpoint that takes a JSON body."""
    return [
        ("POST", "/v1/scan", "platform", {"signals": [{"type": "md5", "value": "d41d8cd98f00b204e9800998ecf8427e"}]}),
        (
            "POST",
            "/v1/scan/batch",
            "platform",
            {"items": [{"signals": [{"type": "pdq", "value": "00" * 32, "quality": 90}], "content_id": "c"}]},
        ),
        ("POST", "/v1/banks", "admin", {"name": "b", "thresholds": {"pdq": 20}, "review_thresholds": {"pdq": 30}}),
        ("PATCH", f"/v1/banks/{t.bank}", "admin", {"description": "d", "thresholds": {"pdq": 25}}),
        (
            "POST",
            f"/v1/banks/{t.bank}/entries",
            "moderator",
            {"signal_type": "sha256", "value": "ab" * 32, "category": "A1", "provenance": {"k": [1, 2.5, "x"]}},
        ),
        ("PATCH", f"/v1/entries/{t.entry_ids[1]}", "moderator", {"enabled": True, "reason": "r"}),
        ("POST", f"/v1/entries/{t.entry_ids[1]}/opinions", "moderator", {"opinion": "confirmed", "note": "n"}),
        (
            "POST",
            "/v1/conversations/conv-1/messages",
            "platform",
            {"message_id": "m1", "sender": {"id": "u1"}, "text": "hello there", "sent_at": 1700000000},
        ),
        ("POST", "/v1/streams", "platform", {"url": "rtmp://127.0.0.1:9/none", "stream_id": "s1", "user_id": "u1"}),
        ("POST", "/v1/webhooks", "admin", {"url": "http://127.0.0.1:9/hook", "events": ["decision"]}),
    ]


#: values a structural JSON mutation puts in place of another: wrong types, edges of every range,
#: other scripts' digits, the red team's pathologies (as raw JSON text, spliced in after encoding)
NASTY_VALUES: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    2**31,
    2**63 - 1,
    -(2**63),
    1.5,
    -0.0,
    1e308,
    "",
    " ",
    "\u0660" * 64,
    "0x" + "a" * 62,
    "A" * 64,
    "a" * 10_000,
    "\x00",
    "\u202e\ufeff",
    "../../etc/passwd",
    [],
    {},
    [[[[[]]]]],
    {"": {"": {"": None}}},
)
RAW_PATHOLOGIES = (b"NaN", b"-Infinity", b"1e999", b"9" * 30, b'"\\ud800"', b"[" * 40 + b"]" * 40, b'"\xff"')


def mutate_json(body: Any, rng: random.Random) -> tuple[list[str], bytes]:
    """A structural mutation of a JSON document: a value replaced (by a nasty value or a raw
    pathology), a key removed or added, a list emptied or repeated. Mostly still JSON, so requests get
    past the parser into validation and the engine; :func:`mutate` covers the byte level."""
    doc = json.loads(json.dumps(body))
    containers: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict | list):
            containers.append(node)
            for v in node.values() if isinstance(node, dict) else node:
                walk(v)

    walk(doc)
    ops = []
    raw_splice: bytes | None = None
    for _ in range(rng.choice((1, 1, 2, 3))):
        node = rng.choice(containers)
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        op = rng.choice(("replace", "replace", "raw", "drop", "add", "repeat"))
        if op in ("replace", "raw", "drop", "repeat") and not keys:
            op = "add"
        ops.append(op)
        if op == "replace":
            node[rng.choice(keys)] = rng.choice(NASTY_VALUES)
        elif op == "raw":
            node[rng.choice(keys)] = "@@RAW@@"
            raw_splice = rng.choice(RAW_PATHOLOGIES)
        elif op == "drop":
            del node[rng.choice(keys)]
        elif op == "add":
            if isinstance(node, dict):
                node[rng.choice(("x", "signals", "type", "value", "__proto__", "quality"))] = rng.choice(NASTY_VALUES)
            else:
                node.append(rng.choice(NASTY_VALUES))
        elif isinstance(node, list):
            node.extend(node[:1] * rng.choice((2, 100, 1001)))
        else:
            node[rng.choice(keys)] = [node[rng.choice(keys)]] * rng.choice((2, 1001))
    raw = json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode()
    if raw_splice is not None:
        raw = raw.replace(b'"@@RAW@@"', raw_splice, 1)
    return ops, raw
