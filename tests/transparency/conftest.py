"""The records a transparency report is computed from, made for real: scans through the API, cases decided
through the service, a report submitted to a loopback NCMEC, a grooming decision through the engine's
policy, a watched stream (a local file) terminated, a user report whose case is confirmed."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from safeguard.banks import BankService
from safeguard.cases import CaseService
from safeguard.content import Content, ContentKind, Finding
from safeguard.engine import Engine
from safeguard.media import Media
from safeguard.reports import ReportService
from safeguard.signals.pdq import PDQSignal, pdq_hex
from safeguard.workers.streams import StreamConfig, StreamMonitor
from tests.helpers.api import auth
from tests.helpers.cases import LEAD, MOD
from tests.helpers.reports import LEAD2, env_of, ncmec_settings, submitter
from tests.media_factory import image_bytes
from tests.reports.ncmec_server import FakeNcmec
from tests.videogen import benign_image, make_video

#: the day the records are made on; a report over it covers them. Taken when the world is made, not at
#: import: a run that crosses midnight UTC (CI does) made its records after the collection-time date.
MIDNIGHT_GUARD_SECONDS = 300


def _a_day_to_work_in() -> str:
    """Today's UTC date, first waiting out midnight if it is less than five minutes away (a test makes its
    records after the world: they must fall on the same day)."""
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    if (midnight - now).total_seconds() < MIDNIGHT_GUARD_SECONDS:
        time.sleep((midnight - now).total_seconds() + 1)
    return datetime.now(UTC).strftime("%Y-%m-%d")


def cli(world: World, *args: str, **settings: Any) -> subprocess.CompletedProcess[str]:
    """``python -m safeguard.cli ARGS`` as a subprocess on the world's database and data directory, with
    ``settings`` overriding the world's."""
    return subprocess.run(
        [sys.executable, "-m", "safeguard.cli", *args],
        env=env_of(world.engine.settings.with_(**settings)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@dataclass
class World:
    engine: Engine
    client: TestClient
    keys: dict[str, str]
    started: datetime
    finished: datetime
    today: str  # the records' UTC date (a one-day report period covers them)


def _scan_file(client: TestClient, key: str, data: bytes, user: str, cid: str) -> dict[str, Any]:
    r = client.post(
        "/v1/scan",
        headers=auth(key),
        files={"file": ("a.png", data, "image/png")},
        data={"user_id": user, "content_id": cid},
    )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.fixture
def world(tmp_path: Path, app_client: TestClient, keys: dict[str, str], engine: Engine) -> Iterator[World]:
    today = _a_day_to_work_in()
    started = datetime.now(UTC)
    banks = BankService(engine.db)
    banks.create("csam", actor="t", default_category="A1")
    banks.create("partner", actor="t", default_category="B1")
    for bank, seed in (("csam", 2), ("partner", 3)):
        value = PDQSignal().compute(Media.from_bytes(image_bytes(seed)))[0].value
        banks.add_entry(bank, signal_type="pdq", value=value, actor="t")
    platform = keys["platform"]
    for seed in (20, 21, 22):  # benign, not banked: allow
        assert _scan_file(app_client, platform, image_bytes(seed), "u-9", f"c-{seed}")["verdict"] == "allow"
    r = app_client.post("/v1/scan", headers=auth(platform), json={"signals": [{"type": "md5", "value": "0" * 32}]})
    assert r.status_code == 200 and r.json()["verdict"] == "allow"
    confirmed = _scan_file(app_client, platform, image_bytes(2), "u-1", "c-2")
    rejected = _scan_file(app_client, platform, image_bytes(3), "u-2", "c-3")
    assert confirmed["verdict"] == rejected["verdict"] == "block"

    cs = CaseService(engine.db, engine.settings)
    for case_id, outcome in ((confirmed["case_id"], "confirmed"), (rejected["case_id"], "not_violating")):
        cs.claim(MOD, case_id)
        cs.decide(MOD, case_id, outcome=outcome, category="A1" if outcome == "confirmed" else None)
    rs = ReportService(engine.db, engine.settings)
    [rep] = rs.list_reports(LEAD)[0]
    rs.approve(LEAD2, rep.id)
    fake = FakeNcmec().start()
    try:
        assert submitter(engine, ncmec_settings(engine, fake)).run_once().finished == [rep.id]
    finally:
        fake.stop()

    # a grooming decision through the engine's policy: a threat to share, so a case, a safety message and a restriction
    groom = engine.decide(
        Content(kind=ContentKind.MESSAGE, conversation_id="conv-1", user_id="adult-1", content_id="m-1"),
        [Finding(detector="grooming", kind="sextortion", score=0.97, explanation="threat to share")],
    )
    assert {a.name for a in groom.actions} >= {"safety_message", "restrict_contact", "case"}

    # a live stream (a local file) whose frames match a bank: terminated
    img = benign_image(13)
    banks.add_entry("partner", signal_type="pdq", value=pdq_hex(img)[0], actor="t", category="A2")
    clip = tmp_path / "clip.mp4"
    make_video(clip, seconds=3, fps=10, insert=img, insert_at=(2.0, 3.0))  # type: ignore[arg-type]
    mon = StreamMonitor(engine, StreamConfig(allow_files=True, give_up_after=5))
    st = mon.watch(str(clip), platform_stream_id="live-1", user_id="u-3")
    assert mon.wait(st.id, timeout=30).status == "terminated"

    # a user report: its case confirmed (actioned)
    r = app_client.post(
        "/v1/user-reports",
        json={"reporter_id": "r-1", "reason": "grooming", "reported_user_id": "adult-9", "text": "keeps asking me"},
        headers=auth(platform),
    )
    assert r.status_code == 201, r.text
    ur_case = r.json()["case_id"]
    cs.claim(MOD, ur_case)
    cs.decide(MOD, ur_case, outcome="confirmed", category="grooming")
    yield World(engine, app_client, keys, started, datetime.now(UTC), today)
