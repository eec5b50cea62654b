"""The CyberTipline XML validates against NCMEC's schema; what does not validate is told line by line."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from safeguard.reports.gather import transcript_of, user_of
from safeguard.reports.ncmec import xml as x

REPORTER = x.Reporter("Example Platform", "Ann Lee", "safety@example.org", "+1 555 0100")
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_media_report_and_file_details_validate() -> None:
    user = x.ReportedUser("u-1", "ann_b", "Ann B", "u1@example.org", NOW, (x.IpEvent("192.0.2.7", 51234, NOW),))
    doc = x.report_xml(x.ReportData(7, 3, "A2", NOW, REPORTER, user, item_count=2))
    assert x.validate(doc) == []
    assert b"<port>51234</port>" in doc and b"<screenName>ann_b</screenName>" in doc
    f = x.FileData(
        "1234",
        "f-1",
        "a.jpg",
        NOW,
        {"sha256": "ab" * 32, "md5": "cd" * 16},
        "A2",
        True,
        False,
        x.IpEvent("192.0.2.7", 51234, NOW),
        {"Make": "Cam", "DateTime": "2026:01:01 00:00:00"},
    )
    fd = x.file_details_xml(f)
    assert x.validate(fd) == []
    assert b"<industryClassification>A2</industryClassification>" in fd and b'type="EXIF"' in fd


def test_chat_report_without_media_carries_annotations_and_transcript() -> None:
    bodies = [
        {
            "created_at": NOW,
            "user": {"ip": "198.51.100.2", "port": 443, "screen_name": "x"},
            "findings": [
                {
                    "detector": "grooming",
                    "kind": "sextortion",
                    "evidence": [
                        {
                            "message_id": "m2",
                            "sender_id": "u-9",
                            "indicators": ["pressure.threat_to_share"],
                            "snippet": "send it or else",
                        }
                    ],
                },
            ],
        }
    ]
    text, ann = transcript_of(bodies)
    assert "[m2] u-9: send it or else" in text and ann == ("csamSolicitation", "sextortion")
    user = user_of("u-9", bodies)
    assert user.ips == (x.IpEvent("198.51.100.2", 443, NOW),) and user.screen_name == "x"
    d = x.ReportData(
        1, 2, "sextortion", NOW, REPORTER, user, chat=True, conversation_id="conv-1", transcript=text, annotations=ann
    )
    doc = x.report_xml(d)
    assert x.validate(doc) == []
    assert b"Online Enticement" in doc and b"<sextortion>true</sextortion>" in doc and b"chatImIncident" in doc


def test_invalid_documents_are_told_not_sent() -> None:
    errs = x.validate(b"<report><incidentSummary><incidentType>Nope</incidentType></incidentSummary></report>")
    assert errs and all(e.startswith("line ") for e in errs) and "Nope" in " ".join(errs)
    assert x.validate(b"<report>")[0].startswith("not well-formed")
    bad_ip = x.ReportedUser("u", ips=(x.IpEvent("1.2.3.4", None, None, event="Sometime"),))
    assert x.validate(x.report_xml(x.ReportData(1, 1, "A1", NOW, REPORTER, bad_ip)))  # eventName not in the enum


def test_building_and_validating_is_well_under_50ms() -> None:
    d = x.ReportData(1, 2, "A1", NOW, REPORTER, x.ReportedUser("u-1"), item_count=1)
    x.validate(x.report_xml(d))
    t0 = time.perf_counter()
    for _ in range(50):
        assert x.validate(x.report_xml(d)) == []
    assert (time.perf_counter() - t0) / 50 < 0.05
