"""A loopback NCMEC hash sharing API (v2, XML), in the shapes python-threatexchange's client reads.

From NCMEC's documentation (report.cybertip.org/hashsharing/v2/documentation.pdf) as pytx's
``NCMECHashAPI`` uses it: HTTP basic auth; ``GET /v2/entries?from=&to=`` answers a ``queryResult`` with
``images`` and ``videos`` (each with a ``maxTimestamp`` attribute) holding ``image``/``video`` entries
(``id``, ``member id=``, ``classification``, ``fingerprints``) and ``deletedImage``/``deletedVideo``
tombstones (``id``, ``member``), and ``paging/next``: the path of the next page, which carries the same
``from``/``to`` and ``start``/``size``/``max``. ``PUT /v2/entries/{member}/{id}/{FINGERPRINT}/feedback``
takes a ``feedbackSubmission`` (``affirmative``, or ``negative`` with ``reasonIds/guid``);
``GET /v2/feedback/{FINGERPRINT}/reasons`` lists the negative reasons.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse
from xml.sax.saxutils import escape

from tests.helpers.net import serving

USER, PASSWORD = "esp-user", "esp-password"
NS = "https://hashsharing.ncmec.org/hashsharing/v2"
REASONS = {"b5c4-not-csam": "Not CSAM"}
_FMT = "%Y-%m-%dT%H:%M:%SZ"


def ts(text: str) -> int:
    return int(datetime.strptime(text, _FMT).replace(tzinfo=UTC).timestamp())


def iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime(_FMT)


@dataclass
class NCMEC:
    url: str
    entries: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = 2
    malformed_after: int | None = None  # answer broken XML from this many entries requests on
    requests: list[dict[str, str]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    fail_feedback: bool = False

    def entry(
        self, eid: str, at: int, *, member: int = 7, kind: str = "image", deleted: bool = False, **fingerprints: str
    ) -> None:
        self.entries = [e for e in self.entries if not (e["id"] == eid and e["member"] == member)]
        self.entries.append(
            {"id": eid, "member": member, "kind": kind, "at": at, "deleted": deleted, "fingerprints": fingerprints}
        )


def _entry_xml(e: dict[str, Any]) -> str:
    tag = ("deleted" + e["kind"].capitalize()) if e["deleted"] else e["kind"]
    inner = f'<id>{escape(e["id"])}</id><member id="{e["member"]}">ESP {e["member"]}</member>'
    inner += f"<timestamp>{iso(e['at'])}</timestamp>"
    if not e["deleted"]:
        inner += "<classification>A1</classification><fingerprints>"
        inner += "".join(f"<{k}>{escape(v)}</{k}>" for k, v in e["fingerprints"].items())
        inner += "</fingerprints>"
    return f"<{tag}>{inner}</{tag}>"


@contextmanager
def ncmec_server() -> Iterator[NCMEC]:
    state: NCMEC

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("content-type", "application/xml")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            want = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            if self.headers.get("authorization") != want:
                self._send(401, "<error>unauthorized</error>")
                return False
            return True

        def do_GET(self) -> None:
            if not self._authorised():
                return
            u = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(u.query).items()}
            if u.path.startswith("/v2/feedback/") and u.path.endswith("/reasons"):
                reasons = "".join(f'<reason guid="{g}" name="{n}"/>' for g, n in REASONS.items())
                self._send(
                    200,
                    f'<feedbackReasons xmlns="{NS}"><availableFeedbackReasons>{reasons}'
                    "</availableFeedbackReasons></feedbackReasons>",
                )
                return
            if u.path != "/v2/entries":
                self._send(404, "<error>not found</error>")
                return
            state.requests.append(q)
            if state.malformed_after is not None and len(state.requests) > state.malformed_after:
                self._send(200, f'<queryResult xmlns="{NS}"><images maxTimestamp="not a time"><image>')
                return
            lo, hi = ts(q["from"]), ts(q["to"])
            start, size = int(q.get("start", "1")), state.page_size
            due = sorted((e for e in state.entries if lo <= e["at"] <= hi), key=lambda e: (e["at"], e["id"]))
            page = due[start - 1 : start - 1 + size]
            body = f'<queryResult xmlns="{NS}">'
            for kind, tag in (("image", "images"), ("video", "videos")):
                mine = [e for e in page if e["kind"] == kind]
                if mine:
                    top = max(e["at"] for e in due)
                    body += f'<{tag} count="{len(mine)}" maxTimestamp="{iso(top)}">'
                    body += "".join(_entry_xml(e) for e in mine) + f"</{tag}>"
            if start - 1 + size < len(due):
                nxt = urlencode(
                    {"from": q["from"], "to": q["to"], "start": start + size, "size": size, "max": len(due)}
                )
                body += f"<paging><next>/v2/entries?{escape(nxt)}</next></paging>"
            self._send(200, body + "</queryResult>")

        def do_PUT(self) -> None:
            if not self._authorised():
                return
            parts = urlparse(self.path).path.split("/")
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            # /v2/entries/{member}/{id}/{FINGERPRINT}/feedback
            if len(parts) != 7 or parts[1:3] != ["v2", "entries"] or parts[6] != "feedback":
                self._send(404, "<error>not found</error>")
                return
            if state.fail_feedback:
                self._send(503, "<error>try later</error>")
                return
            root = ET.fromstring(body)
            vote = root[0].tag.partition("}")[2] or root[0].tag
            guids = [g.text for g in root.iter() if g.tag.endswith("guid")]
            state.feedback.append(
                {"member": int(parts[3]), "id": parts[4], "fingerprint": parts[5], "vote": vote, "reasons": guids}
            )
            self._send(200, f'<feedbackResult xmlns="{NS}"/>')

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as server:
        state = NCMEC(url=f"http://127.0.0.1:{server.server_address[1]}")
        yield state
