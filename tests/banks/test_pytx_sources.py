"""Other exchanges through python-threatexchange: file and URL lists, and StopNCII's FetchHashes API, each
against a loopback server implementing the documented shapes, synced into a bank by checkpoint."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from safeguard.banks import BankService
from safeguard.banks.sources.base import Checkpoint, HashListSource, Row
from safeguard.config import Settings
from safeguard.content import Content, ContentKind, Signal
from safeguard.egress import EgressRefused
from safeguard.engine import Engine
from safeguard.errors import InvalidInput, PayloadTooLarge, SafeguardError

pytest.importorskip("threatexchange", reason="the exchanges extra (python-threatexchange) is not installed")

from safeguard.banks.sources.pytx import FileListSource, StopNCIISource, ThreatExchangeSource, URLListSource
from tests.helpers.cli import point_cli_at
from tests.helpers.net import serving

FETCH_KEY, SUB_KEY, FEEDBACK_KEY = "fetch-key", "subscription-key", "feedback-key"
TE_TOKEN = "4321|app-secret"


def pdq(i: int) -> str:
    return hashlib.sha256(f"pdq-{i}".encode()).hexdigest()  # far apart: about 128 bits between any two


def md5(i: int) -> str:
    return f"{i:032x}"


@dataclass
class Exchange:
    """The StopNCII FetchHashes API (https://api.stopncii.org/v1/FetchHashes) as the pytx client uses it,
    and a plain file for list sources."""

    url: str
    records: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = 2  # the server's page, whatever pageSize asks: several pages per sync
    list_text: str = ""
    te_updates: list[dict[str, Any]] = field(default_factory=list)  # ThreatExchange /threat_updates records
    malformed: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)  # StopNCII SubmitFeedback bodies
    reactions: list[tuple[str, str]] = field(default_factory=list)  # ThreatExchange (descriptor, reaction)
    fail_posts: bool = False

    def te_update(self, uid: int, value: str, at: int, *, kind: str = "HASH_PDQ", delete: bool = False) -> None:
        """A /threat_updates record: one descriptor by app 111 (MALICIOUS), or a tombstone."""
        self.te_updates = [u for u in self.te_updates if u["id"] != str(uid)]
        rec: dict[str, Any] = {
            "id": str(uid),
            "indicator": value,
            "type": kind,
            "last_updated": at,
            "should_delete": delete,
        }
        if not delete:
            descriptor = {"id": str(uid * 10), "owner": {"id": "111"}, "status": "MALICIOUS", "tags": ["csam"]}
            rec["descriptors"] = {"data": [descriptor]}
        self.te_updates.append(rec)

    def record(self, value: str, at: int, *, kind: str = "ImagePDQ", status: str = "Active") -> None:
        self.records = [r for r in self.records if r["hashValue"] != value]
        self.records.append(
            {
                "lastModtimestamp": at,
                "signalType": kind,
                "hashValue": value,
                "hashStatus": status,
                "caseNumbers": {"case-1": status},
                "CSPFeedbacks": [{"feedbackValue": "Blocked", "tags": ["t"], "source": "other-platform"}],
            }
        )


@contextmanager
def exchange_server() -> Iterator[Exchange]:
    state: Exchange

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            u = urlparse(self.path)
            if u.path == "/list.txt":
                self._send(200, state.list_text.encode(), "text/plain")
                return
            if u.path.startswith("/v26.0/") and u.path.endswith("/threat_updates/"):
                self._threat_updates(u.path.split("/")[2], {k: v[0] for k, v in parse_qs(u.query).items()})
                return
            if u.path != "/v1/FetchHashes":
                self._send(404, b'{"error": "not found"}')
                return
            if (
                self.headers.get("x-functions-key") != FETCH_KEY
                or self.headers.get("Ocp-Apim-Subscription-Key") != SUB_KEY
            ):
                self._send(401, b'{"error": "bad keys"}')
                return
            q = {k: v[0] for k, v in parse_qs(u.query).items()}
            state.requests.append(q)
            if state.malformed:
                self._send(200, b'{"hashRecords": [], "count": "lots"}')
                return
            start = int(q["startTimestamp"])
            offset = int(q.get("nextPageToken", "0"))
            due = sorted(
                (r for r in state.records if r["lastModtimestamp"] >= start), key=lambda r: r["lastModtimestamp"]
            )
            page = due[offset : offset + state.page_size]
            more = offset + state.page_size < len(due)
            body = {
                "count": len(page),
                "nextPageToken": str(offset + state.page_size) if more else None,
                "nextSetTimestamp": (max(r["lastModtimestamp"] for r in due) + 1) if due else start,
                "hasMoreRecords": more,
                "hashRecords": page,
            }
            self._send(200, json.dumps(body).encode())

        def do_POST(self) -> None:
            u = urlparse(self.path)
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if state.fail_posts:
                self._send(503, b'{"error": "try later"}')
                return
            if u.path == "/v1/SubmitFeedback":
                # https://api.stopncii.org/v1/SubmitFeedback: its own function key, the subscription key
                if (
                    self.headers.get("x-functions-key") != FEEDBACK_KEY
                    or self.headers.get("Ocp-Apim-Subscription-Key") != SUB_KEY
                ):
                    self._send(401, b'{"error": "bad keys"}')
                    return
                doc = json.loads(body)
                assert doc["count"] == len(doc["hashFeedbacks"])
                state.feedback.extend(doc["hashFeedbacks"])
                self._send(200, b"{}")
                return
            parts = u.path.strip("/").split("/")
            if len(parts) == 2 and parts[0] == "v26.0" and parts[1].isdigit():
                # https://developers.facebook.com/docs/threat-exchange/reference/reacting: POST /{descriptor}
                q = {k: v[0] for k, v in parse_qs(u.query).items()}
                if q.get("access_token") != TE_TOKEN:
                    self._send(400, b'{"error": {"message": "Invalid OAuth access token", "code": 190}}')
                    return
                state.reactions.append((parts[1], q["reactions"]))
                self._send(200, b'{"success": true}')
                return
            self._send(404, b'{"error": "not found"}')

        def _threat_updates(self, group: str, q: dict[str, str]) -> None:
            """https://developers.facebook.com/docs/threat-exchange/reference/apis/threat-updates/"""
            if q.get("access_token") != TE_TOKEN or group != "1234":
                self._send(401, b'{"error": {"message": "Invalid OAuth access token", "code": 190}}')
                return
            state.requests.append(q)
            start = int(q.get("start_time", "0"))
            offset = int(q.get("offset", "0"))
            due = sorted((u for u in state.te_updates if u["last_updated"] >= start), key=lambda u: u["last_updated"])
            page = due[offset : offset + state.page_size]
            body: dict[str, Any] = {"data": page}
            if offset + state.page_size < len(due):
                nxt = f"access_token={TE_TOKEN}&start_time={start}&offset={offset + state.page_size}"
                body["paging"] = {"cursors": {}, "next": f"{state.url}/v26.0/{group}/threat_updates/?{nxt}"}
            self._send(200, json.dumps(body).encode())

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as server:
        state = Exchange(url=f"http://127.0.0.1:{server.server_address[1]}")
        yield state


def sync(banks: BankService, bank: str, source: HashListSource, checkpoint: Checkpoint | None) -> Checkpoint | None:
    """What a scheduled sync does: each batch into the bank, then its checkpoint."""
    for rows, cp in source.fetch_iter(checkpoint):
        banks.import_rows(bank, rows, actor="test:sync", source=source.name)
        checkpoint = cp
    return checkpoint


def verdict(engine: Engine, value: str) -> str:
    return engine.scan(Content(kind=ContentKind.HASHES, signals=(Signal("pdq", value, quality=100),))).verdict.value


def enabled_values(banks: BankService, bank: str) -> set[str]:
    return {e.value for e in banks.list_entries(bank, limit=1000) if e.enabled}


def test_stopncii_feed_syncs_pages_resumes_and_honours_withdrawals(
    engine: Engine, banks: BankService, settings: Settings
) -> None:
    banks.create("ncii", actor="t", kind="ncii")
    with exchange_server() as ex:
        for i in range(1, 4):
            ex.record(pdq(i), at=100 + i)
        ex.record("https://example.org/x", at=104, kind="URL")  # a type Safeguard does not match
        ex.record(md5(9), at=105, kind="VideoMD5")
        src = StopNCIISource(ex.url + "/v1", settings, fetch_key=FETCH_KEY, subscription_key=SUB_KEY)
        cp = sync(banks, "ncii", src, None)
        assert len(ex.requests) == 3 and ex.requests[0]["startTimestamp"] == "10"  # pytx's first start, paged
        assert enabled_values(banks, "ncii") == {pdq(1), pdq(2), pdq(3), md5(9)}
        assert [r.code for r in src.rejected] == ["unsupported_signal"]
        entry = banks.list_entries("ncii")[0]
        assert entry.source == "stopncii" and entry.provenance["exchange"] == "stopncii"
        assert "positive_class" in entry.provenance["opinions"]
        assert verdict(engine, pdq(2)) == "review"  # the default policy: other banks' matches go to review
        assert cp is not None and json.loads(cp.value)["update_time"] == 106

        # later: one hash withdrawn by the person who submitted it, one new
        ex.requests.clear()
        ex.record(pdq(2), at=200, status="Withdrawn")
        ex.record(pdq(4), at=201)
        cp2 = sync(banks, "ncii", src, cp)
        assert ex.requests[0]["startTimestamp"] == "106"  # resumed from the checkpoint, not from the start
        assert enabled_values(banks, "ncii") == {pdq(1), pdq(3), pdq(4), md5(9)}
        assert verdict(engine, pdq(2)) == "allow" and verdict(engine, pdq(4)) == "review"
        assert cp2 is not None and json.loads(cp2.value)["update_time"] == 202

        # nothing new: the same position comes back (with a new fetch time), nothing changes
        cp3 = sync(banks, "ncii", src, cp2)
        assert cp3 is not None and json.loads(cp3.value)["update_time"] == 202
        assert enabled_values(banks, "ncii") == {pdq(1), pdq(3), pdq(4), md5(9)}


def test_stopncii_failures_are_clear_and_leave_the_checkpoint(banks: BankService, settings: Settings) -> None:
    banks.create("ncii", actor="t", kind="ncii")
    with exchange_server() as ex:
        ex.record(pdq(1), at=101)
        bad = StopNCIISource(ex.url + "/v1", settings, fetch_key="wrong", subscription_key=SUB_KEY)
        with pytest.raises(SafeguardError) as e:
            sync(banks, "ncii", bad, None)
        assert e.value.code == "source_failed" and e.value.status == 502 and "401" in e.value.message
        ex.malformed = True
        src = StopNCIISource(ex.url + "/v1", settings, fetch_key=FETCH_KEY, subscription_key=SUB_KEY)
        with pytest.raises(SafeguardError) as e:
            sync(banks, "ncii", src, None)
        assert e.value.code == "source_failed"
        assert banks.list_entries("ncii") == []
        with pytest.raises(InvalidInput) as bad_cp:
            next(src.fetch_iter(Checkpoint('{"cursor": 3}')))
        assert bad_cp.value.code == "invalid_checkpoint"


def test_exchanges_go_through_the_egress_policy(settings: Settings) -> None:
    strict = settings.with_(egress_allow="")
    with pytest.raises(EgressRefused):
        StopNCIISource("http://127.0.0.1:9/v1", strict, fetch_key=FETCH_KEY, subscription_key=SUB_KEY)
    with pytest.raises(EgressRefused):
        URLListSource("http://127.0.0.1:9/list.txt", strict)
    with pytest.raises(InvalidInput):
        URLListSource("file:///etc/passwd", settings)


@pytest.mark.parametrize("kind", ["stopncii", "threatexchange", "ncmec"])
def test_pytx_clients_check_the_address_at_connect_time(
    kind: str, banks: BankService, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name that answered loopback (allowed here) when the source was made and the metadata address
    when pytx's client connects: refused at connect, nothing sent to either."""
    from safeguard import egress
    from safeguard.banks.sources.pytx import NCMECSource

    banks.create("b", actor="t", kind="other")
    lookups = [[egress.parse_host("127.0.0.1")], [egress.parse_host("169.254.169.254")]]
    monkeypatch.setattr(egress, "resolve", lambda host, port: lookups.pop(0) if len(lookups) > 1 else lookups[0])
    with exchange_server() as ex:
        base = ex.url.replace("127.0.0.1", "exchange.test")
        src: HashListSource
        if kind == "stopncii":
            src = StopNCIISource(base + "/v1", settings, fetch_key=FETCH_KEY, subscription_key=SUB_KEY)
        elif kind == "threatexchange":
            src = ThreatExchangeSource(1234, settings, api_token=TE_TOKEN, base_url=base + "/v26.0")
        else:
            src = NCMECSource(base.replace("http://", "https://"), settings, username="u", password="p")
        assert len(lookups) == 1  # the check when the source was made used the first answer
        with pytest.raises(EgressRefused) as e:
            sync(banks, "b", src, None)
        assert "169.254.169.254" in e.value.message and ex.requests == []


def test_file_list_with_and_without_types(tmp_path: Path, banks: BankService) -> None:
    banks.create("list", actor="t", kind="other")
    typed = tmp_path / "typed.txt"
    typed.write_text(f"pdq {pdq(1)}\nvideo_md5 {md5(2)}\nraw_text hello there\npdq not-a-hash\n\n")
    src = FileListSource(typed)
    sync(banks, "list", src, None)
    assert enabled_values(banks, "list") == {pdq(1), md5(2)}
    assert sorted(r.code for r in src.rejected) == ["invalid_signal", "unsupported_signal"]
    bare = tmp_path / "bare.txt"
    bare.write_text(f"{pdq(3)}\n{pdq(4)}\n")
    sync(banks, "list", FileListSource(bare, signal_type="pdq"), None)
    assert enabled_values(banks, "list") == {pdq(1), md5(2), pdq(3), pdq(4)}
    with pytest.raises(InvalidInput) as e:
        FileListSource(tmp_path / "missing.txt")
    assert e.value.code == "invalid_source"


def test_url_list_is_fetched_through_the_checked_client(banks: BankService, settings: Settings) -> None:
    banks.create("list", actor="t", kind="other")
    with exchange_server() as ex:
        ex.list_text = f"pdq {pdq(5)}\npdq {pdq(6)}\n"
        src = URLListSource(ex.url + "/list.txt", settings)
        sync(banks, "list", src, None)
        assert enabled_values(banks, "list") == {pdq(5), pdq(6)}
        with pytest.raises(SafeguardError) as e:
            sync(banks, "list", URLListSource(ex.url + "/missing.txt", settings), None)
        assert e.value.code == "source_failed"
        with pytest.raises(PayloadTooLarge):
            sync(banks, "list", URLListSource(ex.url + "/list.txt", settings, max_bytes=10), None)


def test_bank_pull_cli_resumes_from_its_checkpoint_file(
    tmp_path: Path, banks: BankService, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from safeguard.cli import app

    banks.create("ncii", actor="t", kind="ncii")
    point_cli_at(monkeypatch, settings)
    keys = tmp_path / "stopncii.keys"
    keys.write_text(f"{FETCH_KEY},{SUB_KEY}\n")
    cp = tmp_path / "stopncii.checkpoint"
    runner = CliRunner()
    with exchange_server() as ex:
        for i in range(1, 4):
            ex.record(pdq(i), at=100 + i)
        args = ["bank", "pull", "ncii", "--stopncii", ex.url + "/v1", "--keys-file", str(keys)]
        got = runner.invoke(app, [*args, "--checkpoint-file", str(cp)])
        assert got.exit_code == 0, got.output
        assert "2 batches: 3 added or updated, 0 deleted, 0 rejected" in got.output
        assert json.loads(cp.read_text())["update_time"] == 104
        ex.requests.clear()
        ex.record(pdq(1), at=300, status="Deleted")
        got = runner.invoke(app, [*args, "--checkpoint-file", str(cp)])
        assert got.exit_code == 0 and "1 deleted" in got.output, got.output
        assert [r["startTimestamp"] for r in ex.requests] == ["104"]
    assert enabled_values(banks, "ncii") == {pdq(2), pdq(3)}
    token = tmp_path / "te.token"
    token.write_text(TE_TOKEN + "\n")
    with exchange_server() as ex:
        ex.te_update(7, pdq(7), at=100)
        te = ["--threatexchange", "1234", "--token-file", str(token), "--te-url", ex.url + "/v26.0"]
        got = runner.invoke(app, ["bank", "pull", "ncii", *te])
        assert got.exit_code == 0 and "1 added or updated" in got.output, got.output
    assert enabled_values(banks, "ncii") == {pdq(2), pdq(3), pdq(7)}
    got = runner.invoke(app, ["bank", "pull", "ncii"])
    assert isinstance(got.exception, SafeguardError) and got.exception.code == "invalid_source"  # main() prints it


def test_threatexchange_privacy_group_syncs_by_cursor_and_tombstones(banks: BankService, settings: Settings) -> None:
    banks.create("te", actor="t", kind="csam", default_category="A1")
    with exchange_server() as ex:
        ex.te_update(1, pdq(1), at=100)
        ex.te_update(2, pdq(2), at=101)
        ex.te_update(3, md5(3), at=102, kind="HASH_MD5")
        ex.te_update(4, "https://example.org/x", at=103, kind="URI")  # not a type Safeguard matches
        src = ThreatExchangeSource(1234, settings, api_token=TE_TOKEN, base_url=ex.url + "/v26.0")
        cp = sync(banks, "te", src, None)
        assert len(ex.requests) == 2 and "start_time" not in ex.requests[0]  # from the start, two pages
        assert enabled_values(banks, "te") == {pdq(1), pdq(2), md5(3)}
        assert [r.code for r in src.rejected] == ["unsupported_signal"]
        entry = banks.list_entries("te")[0]
        assert entry.source == "threatexchange" and entry.provenance["opinions"] == ["positive_class"]
        assert entry.category == "A1"
        assert cp is not None and json.loads(cp.value)["update_time"] == 103

        ex.requests.clear()
        ex.te_update(1, pdq(1), at=200, delete=True)
        ex.te_update(5, pdq(5), at=201)
        cp2 = sync(banks, "te", src, cp)
        assert ex.requests[0]["start_time"] == "103"
        assert enabled_values(banks, "te") == {pdq(2), md5(3), pdq(5)}
        assert cp2 is not None and json.loads(cp2.value)["update_time"] == 201

        ex.te_updates.clear()  # nothing new: the API answers an empty page, and the fetch ends cleanly
        cp3 = sync(banks, "te", src, cp2)
        assert cp3 == cp2 and enabled_values(banks, "te") == {pdq(2), md5(3), pdq(5)}

        bad = ThreatExchangeSource(1234, settings, api_token="4321|wrong", base_url=ex.url + "/v26.0")
        with pytest.raises(SafeguardError) as e:
            sync(banks, "te", bad, None)
        assert e.value.code == "source_failed" and "401" in e.value.message
    with pytest.raises(InvalidInput) as bad_token:
        ThreatExchangeSource(1234, settings, api_token="no-app-id", base_url="http://127.0.0.1:9/v26.0")
    assert bad_token.value.code == "invalid_source"


def queue(engine: Engine) -> list[tuple[str, str, str, int, str | None]]:
    from sqlalchemy import select

    from safeguard.store.models import ExchangeOpinionOut

    with engine.db.read() as s:
        rows = s.execute(select(ExchangeOpinionOut).order_by(ExchangeOpinionOut.id)).scalars().all()
        return [(o.subscription, o.opinion, o.status, o.attempts, o.last_error) for o in rows]


def opinion_events(engine: Engine) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from safeguard.store.models import Event

    with engine.db.read() as s:
        q = select(Event.payload).where(Event.type == "exchange.opinions_sent").order_by(Event.seq)
        return [dict(p) for p in s.execute(q).scalars()]


def test_opinions_go_back_to_stopncii_from_an_outbox_with_retries(
    engine: Engine, banks: BankService, settings: Settings
) -> None:
    from safeguard.exchange.pytx_opinions import send_opinions

    banks.create("ncii", actor="t", kind="ncii")
    banks.add_entry("ncii", signal_type="pdq", value=pdq(8), actor="mod:local")  # a local entry: its opinions stay here
    with exchange_server() as ex:
        for i in range(1, 4):
            ex.record(pdq(i), at=100 + i)
        src = StopNCIISource(ex.url + "/v1", settings, fetch_key=FETCH_KEY, subscription_key=SUB_KEY)
        sync(banks, "ncii", src, None)
        ids = {e.value: e.id for e in banks.list_entries("ncii")}
        banks.add_opinion(ids[pdq(1)], "confirmed", actor="mod:a", note="seen it: stays local")
        banks.add_opinion(ids[pdq(2)], "disputed", actor="mod:a")
        banks.add_opinion(ids[pdq(3)], "none", actor="mod:a")  # not an opinion that travels
        banks.add_opinion(ids[pdq(8)], "disputed", actor="mod:a")
        assert [(q[0], q[1], q[2]) for q in queue(engine)] == [
            ("pytx:stopncii", "confirmed", "pending"),
            ("pytx:stopncii", "disputed", "pending"),
        ]

        # without the SubmitFeedback key: nothing sent, kept with the reason
        got = send_opinions(engine.db, "ncii", src, actor="test")
        assert got.sent == 0 and got.error is not None and "FEEDBACK_KEY" in got.error.message
        assert [q[2:4] for q in queue(engine)] == [("pending", 1), ("pending", 1)] and ex.feedback == []

        keyed = StopNCIISource(
            ex.url + "/v1", settings, fetch_key=FETCH_KEY, subscription_key=SUB_KEY, feedback_key=FEEDBACK_KEY
        )
        ex.fail_posts = True  # StopNCII down: kept, retried on the next round
        got = send_opinions(engine.db, "ncii", keyed, actor="test")
        assert got.sent == 0 and got.error is not None and got.error.code == "source_failed"
        assert "503" in (queue(engine)[0][4] or "")
        ex.fail_posts = False
        got = send_opinions(engine.db, "ncii", keyed, actor="test")
        assert got.sent == 2 and got.error is None
        assert ex.feedback == [
            {"hashValue": pdq(1), "feedbackValue": "Blocked", "tags": []},
            {"hashValue": pdq(2), "feedbackValue": "NotBlocked", "tags": []},
        ]
        assert [q[2:] for q in queue(engine)] == [("sent", 3, None), ("sent", 3, None)]
        assert send_opinions(engine.db, "ncii", keyed, actor="test").sent == 0  # each sent once
        assert len(ex.feedback) == 2
    events_ = opinion_events(engine)
    assert events_ == [
        {
            "sent": [{"entry": ids[pdq(1)], "opinion": "confirmed"}, {"entry": ids[pdq(2)], "opinion": "disputed"}],
            "dropped": [],
        }
    ]


def test_opinions_go_back_to_threatexchange_as_reactions(
    engine: Engine, banks: BankService, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from safeguard.cli import app

    banks.create("te", actor="t", kind="csam")
    point_cli_at(monkeypatch, settings)
    token = tmp_path / "te.token"
    token.write_text(TE_TOKEN + "\n")
    with exchange_server() as ex:
        ex.te_update(1, pdq(1), at=100)
        ex.te_update(2, pdq(2), at=101)
        args = ["bank", "pull", "te", "--threatexchange", "1234", "--token-file", str(token)]
        args += ["--te-url", ex.url + "/v26.0"]
        runner = CliRunner()
        assert runner.invoke(app, args).exit_code == 0
        ids = {e.value: e for e in banks.list_entries("te")}
        assert ids[pdq(1)].provenance["descriptors"] == [10]
        banks.add_opinion(ids[pdq(1)].id, "disputed", actor="mod:a")
        banks.add_opinion(ids[pdq(2)].id, "confirmed", actor="mod:a")
        got = runner.invoke(app, args)  # the next pull sends them first
        assert got.exit_code == 0 and "2 opinions sent to threatexchange" in got.output, got.output
        assert ex.reactions == [("10", "NOT_HELPFUL"), ("20", "HELPFUL")]
    assert [q[2] for q in queue(engine)] == ["sent", "sent"]


def test_an_opinion_the_exchange_cannot_take_is_dropped_with_the_reason(
    engine: Engine, banks: BankService, settings: Settings
) -> None:
    from safeguard.exchange.pytx_opinions import send_opinions

    banks.create("te", actor="t", kind="csam")
    fetched = Row(1, "pdq", pdq(1), source="threatexchange", provenance={"exchange": "threatexchange"})
    listed = Row(2, "pdq", pdq(2), source="threatexchange")  # a list file that names ThreatExchange
    # fetched from ThreatExchange, but with no descriptor of anyone else's to react to
    banks.import_rows("te", [fetched, listed], actor="t", source="threatexchange")
    by_value = {e.value: e for e in banks.list_entries("te")}
    entry = by_value[pdq(1)]
    banks.add_opinion(entry.id, "confirmed", actor="mod:a")
    banks.add_opinion(by_value[pdq(2)].id, "confirmed", actor="mod:a")  # not queued: not from the exchange
    with exchange_server() as ex:
        src = ThreatExchangeSource(1234, settings, api_token=TE_TOKEN, base_url=ex.url + "/v26.0")
        got = send_opinions(engine.db, "te", src, actor="test")
        assert got.sent == 0 and got.error is None and ex.reactions == []
    assert queue(engine) == [
        ("pytx:threatexchange", "confirmed", "dropped", 1, "the entry names no ThreatExchange descriptor to react to")
    ]
    assert opinion_events(engine)[0]["dropped"] == [
        {"entry": entry.id, "reason": "the entry names no ThreatExchange descriptor to react to"}
    ]
