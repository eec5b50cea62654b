"""The JSON shapes of the bank, entry and stream endpoints are a public contract: these tests pin each
response's keys, in order, and the form of their values (ISO 8601 times, ids as numbers), so a change in
how the services build them (dataclasses since 0.x, dicts before) cannot change what clients read."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from safeguard.engine import Engine
from safeguard.workers.streams import StreamConfig, StreamMonitor
from tests.helpers.api import auth
from tests.videogen import make_video

# fmt: off
BANK = [
    "id", "name", "description", "kind", "default_category", "enabled", "shareable", "dihedral",
    "thresholds", "review_thresholds", "version", "created_at", "updated_at",
]
ENTRY = [
    "id", "bank_id", "bank", "signal_type", "value", "category",
    "source", "provenance", "added_by", "added_at", "enabled", "opinion",
]
#: a stream watched by this process (its live state)
STREAM_LIVE = [
    "id", "stream_id", "url", "user_id", "tenant", "status",
    "frames_sampled", "last_frame_time", "findings", "decision_id", "case_id", "error",
]
# fmt: on
#: a stream read from the database (no watcher here)
STREAM_ROW = [*STREAM_LIVE, "created_at", "updated_at"]


def _iso(v: Any) -> None:
    assert isinstance(v, str) and datetime.fromisoformat(v).tzinfo is not None, v


def test_bank_and_entry_responses_keep_their_keys(app_client: TestClient, keys: dict[str, str]) -> None:
    c, admin, mod = app_client, auth(keys["admin"]), auth(keys["moderator"])
    r = c.post("/v1/banks", json={"name": "pin", "default_category": "A1", "thresholds": {"pdq": 30}}, headers=admin)
    assert r.status_code == 201 and list(r.json()) == [*BANK, "entry_count"], r.json()
    made = r.json()
    assert made["entry_count"] == 0 and made["thresholds"] == {"pdq": 30} and made["review_thresholds"] == {"pdq": 40}
    _iso(made["created_at"]), _iso(made["updated_at"])
    listed = c.get("/v1/banks", headers=mod).json()
    assert list(listed) == ["banks"] and [list(b) for b in listed["banks"]] == [[*BANK, "entry_count"]]
    assert c.get("/v1/banks/pin", headers=mod).json() == made
    patched = c.patch("/v1/banks/pin", json={"description": "pinned"}, headers=admin).json()
    assert list(patched) == BANK and patched["version"] == made["version"] + 1  # no entry_count on an update

    r = c.post("/v1/banks/pin/entries", json={"signal_type": "md5", "value": "1" * 32}, headers=mod)
    assert r.status_code == 201 and list(r.json()) == ENTRY, r.json()
    entry = r.json()
    assert entry["bank"] == "pin" and entry["bank_id"] == made["id"] and entry["category"] == "A1"
    assert entry["provenance"] == {} and entry["opinion"] == "none" and entry["enabled"] is True
    _iso(entry["added_at"])
    page = c.get("/v1/banks/pin/entries", headers=mod).json()
    assert list(page) == ["entries", "next_after_id"] and page["entries"] == [entry] and page["next_after_id"] is None
    one = c.get("/v1/banks/pin/entries?limit=1", headers=mod).json()
    assert one["next_after_id"] == entry["id"]
    assert c.get(f"/v1/entries/{entry['id']}", headers=mod).json() == entry
    off = c.patch(f"/v1/entries/{entry['id']}", json={"enabled": False}, headers=mod).json()
    assert list(off) == ENTRY and off["enabled"] is False
    op = c.post(f"/v1/entries/{entry['id']}/opinions", json={"opinion": "disputed"}, headers=mod)
    assert op.status_code == 201 and list(op.json()) == ENTRY and op.json()["opinion"] == "disputed"
    assert list(c.get("/v1/banks/pin", headers=mod).json()) == [*BANK, "entry_count"]


def test_stream_responses_keep_their_keys(
    tmp_path: Path, app_client: TestClient, engine: Engine, keys: dict[str, str]
) -> None:
    mon = StreamMonitor(engine, StreamConfig(allow_files=True, give_up_after=2))
    app_client.app.state.services.provide("stream_monitor", mon)  # type: ignore[attr-defined]
    clip = tmp_path / "clip.mp4"
    make_video(clip, seconds=1, fps=5)
    c, platform = app_client, auth(keys["platform"])
    try:
        r = c.post("/v1/streams", json={"url": str(clip), "stream_id": "p-9", "user_id": "u-9"}, headers=platform)
        assert r.status_code == 201 and list(r.json()) == STREAM_LIVE, r.json()
        live = r.json()
        assert live["stream_id"] == "p-9" and live["user_id"] == "u-9" and live["findings"] == []
        sid = live["id"]
        done = mon.wait(sid, timeout=30)
        assert sid not in mon.watchers, done  # finished: from here on the database answers
        got = c.get(f"/v1/streams/{sid}", headers=platform).json()
        assert list(got) == STREAM_ROW and got["status"] not in ("starting", "watching"), got
        _iso(got["created_at"]), _iso(got["updated_at"])
        listed = c.get("/v1/streams", headers=platform).json()
        assert list(listed) == ["streams"] and listed["streams"] == [got]
        stopped = c.delete(f"/v1/streams/{sid}", headers=platform).json()
        assert stopped == got  # a finished stream stays as it ended
    finally:
        mon.shutdown()
