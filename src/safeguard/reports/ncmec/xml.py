"""The CyberTipline XML: a report and its files' details, built from what Safeguard has and validated
against NCMEC's published schema (``cybertipline-report.xsd``, see README.md) before anything is sent.

Pure functions over plain data (:class:`ReportData`, :class:`FileData`): the database reading is in
:mod:`safeguard.reports.gather`. Building and validating one report takes well under a millisecond to a
few (bench/reports_bench.py).
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lxml import etree

XSD_PATH = Path(__file__).with_name("cybertipline-report.xsd")
CSAM_INCIDENT = "Child Pornography (possession, manufacture, and distribution)"
ENTICEMENT_INCIDENT = "Online Enticement of Children for Sexual Acts"
INDUSTRY = ("A1", "A2", "B1", "B2")
#: the hash names NCMEC's ``originalFileHash/@hashType`` carries, from Safeguard's signal types
HASH_TYPES = {"sha256": "SHA256", "md5": "MD5", "pdq": "PDQ", "sha1": "SHA1"}
MAX_ERRORS = 50


@dataclass(frozen=True)
class IpEvent:
    ip: str
    port: int | None = None
    at: datetime | None = None
    event: str = "Upload"  # NCMEC's ipCaptureType: Login, Registration, Purchase, Upload, Other, Unknown


@dataclass(frozen=True)
class LinkedAccount:
    """An account the platform links to the reported one; ``platform`` ``None`` means the same service."""

    user_id: str
    platform: str | None = None
    screen_name: str | None = None


@dataclass(frozen=True)
class ReportedUser:
    """The reported account as the platform described it (the optional ``user`` fields of a scan)."""

    user_id: str
    screen_name: str | None = None
    display_name: str | None = None
    email: str | None = None
    account_created_at: datetime | None = None
    ips: tuple[IpEvent, ...] = ()
    linked: tuple[LinkedAccount, ...] = ()


@dataclass(frozen=True)
class Reporter:
    organisation: str
    contact: str
    email: str
    phone: str

    def missing(self) -> list[str]:
        names = {
            "organisation": "SAFEGUARD_REPORTER_ORGANISATION",
            "contact": "SAFEGUARD_REPORTER_CONTACT",
            "email": "SAFEGUARD_REPORTER_EMAIL",
        }
        return [f"{env} is not set" for attr, env in names.items() if not getattr(self, attr).strip()]


@dataclass(frozen=True)
class ReportData:
    report_id: int
    case_id: int
    category: str
    incident_at: datetime
    reporter: Reporter
    user: ReportedUser
    chat: bool = False  # grooming / sextortion: reported without media, the conversation is the incident
    conversation_id: str | None = None
    transcript: str = ""
    annotations: tuple[str, ...] = ()  # sextortion, csamSolicitation, minorToMinorInteraction
    item_count: int = 0

    @property
    def incident_type(self) -> str:
        return ENTICEMENT_INCIDENT if self.chat else CSAM_INCIDENT


@dataclass(frozen=True)
class FileData:
    ncmec_report_id: str
    file_id: str
    file_name: str
    uploaded_at: datetime | None
    hashes: dict[str, str]  # signal type -> value
    category: str | None
    viewed_by_person: bool
    publicly_available: bool | None = None
    ip: IpEvent | None = None
    exif: dict[str, str] = field(default_factory=dict)
    note: str = ""


def _iso(t: datetime) -> str:
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _sub(parent: Any, tag: str, text: str | None = None, **attrs: str) -> Any:
    el = etree.SubElement(parent, tag, **attrs)
    if text is not None:
        el.text = text
    return el


def _clean(text: str) -> str:
    """XML 1.0 cannot carry most control characters: drop them (NUL never reaches here, see no_nul)."""
    return "".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 0x20)


def _ip(parent: Any, tag: str, ev: IpEvent) -> None:
    el = _sub(parent, tag)
    _sub(el, "ipAddress", ev.ip)
    _sub(el, "eventName", ev.event)
    if ev.at is not None:
        _sub(el, "dateTime", _iso(ev.at))
    if ev.port is not None:
        _sub(el, "port", str(ev.port))


def _split_name(full: str) -> tuple[str, str]:
    first, _, last = full.strip().partition(" ")
    return first, last.strip()


def report_xml(d: ReportData) -> bytes:
    """The ``<report>`` document for ``POST /submit``."""
    root = etree.Element("report")
    summary = _sub(root, "incidentSummary")
    _sub(summary, "incidentType", d.incident_type)
    if d.reporter.organisation:
        _sub(summary, "platform", _clean(d.reporter.organisation))
    if d.annotations:
        ann = _sub(summary, "reportAnnotations")
        for a in ("sextortion", "csamSolicitation", "minorToMinorInteraction"):
            if a in d.annotations:
                _sub(ann, a, "true")
    _sub(summary, "incidentDateTime", _iso(d.incident_at))
    details = _sub(root, "internetDetails")
    if d.chat:
        chat = _sub(details, "chatImIncident")
        if d.reporter.organisation:
            _sub(chat, "chatClient", _clean(d.reporter.organisation))
        if d.conversation_id:
            _sub(chat, "chatRoomName", _clean(d.conversation_id))
        _sub(chat, "additionalInfo", "The conversation excerpt is attached as transcript.txt.")
    else:
        web = _sub(details, "webPageIncident")
        _sub(
            web,
            "additionalInfo",
            _clean(f"{d.item_count} file(s) uploaded to {d.reporter.organisation or 'the platform'}"),
        )
    reporter = _sub(root, "reporter")
    person = _sub(reporter, "reportingPerson")
    first, last = _split_name(d.reporter.contact)
    if first:
        _sub(person, "firstName", _clean(first))
    if last:
        _sub(person, "lastName", _clean(last))
    if d.reporter.phone:
        _sub(person, "phone", _clean(d.reporter.phone))
    if d.reporter.email:
        _sub(person, "email", _clean(d.reporter.email))
    u = d.user
    reported = _sub(root, "personOrUserReported")
    if u.email:
        p = _sub(reported, "personOrUserReportedPerson")
        _sub(p, "email", _clean(u.email))
    _sub(reported, "espIdentifier", _clean(u.user_id))
    if u.screen_name:
        _sub(reported, "screenName", _clean(u.screen_name))
    if u.display_name:
        _sub(reported, "displayName", _clean(u.display_name))
    for ev in u.ips:
        _ip(reported, "ipCaptureEvent", ev)
    for la in u.linked:  # NCMEC's associatedAccount, type "Linked"
        acc = _sub(reported, "associatedAccount", type="Linked")
        if la.platform:
            _sub(acc, "platform", _clean(la.platform))
        _sub(acc, "espIdentifier", _clean(la.user_id))
        if la.screen_name:
            _sub(acc, "screenName", _clean(la.screen_name))
    info = f"Safeguard case {d.case_id}, report {d.report_id}; category {d.category}."
    if u.account_created_at is not None:
        info += f" Account created {_iso(u.account_created_at)}."
    _sub(root, "additionalInfo", info)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def file_details_xml(f: FileData) -> bytes:
    """The ``<fileDetails>`` document for ``POST /fileinfo``."""
    root = etree.Element("fileDetails")
    _sub(root, "reportId", f.ncmec_report_id)
    _sub(root, "fileId", f.file_id)
    _sub(root, "fileName", _clean(f.file_name))
    _sub(root, "originalFileName", _clean(f.file_name))
    if f.uploaded_at is not None:
        _sub(root, "uploadedToEspTimestamp", _iso(f.uploaded_at))
    _sub(root, "fileViewedByEsp", "true" if f.viewed_by_person else "false")
    if f.exif:
        _sub(root, "exifViewedByEsp", "false")
    if f.publicly_available is not None:
        _sub(root, "publiclyAvailable", "true" if f.publicly_available else "false")
    _sub(root, "fileRelevance", "Reported")
    if f.category in INDUSTRY:
        _sub(root, "industryClassification", f.category)
    for kind, value in f.hashes.items():
        if kind in HASH_TYPES:
            _sub(root, "originalFileHash", value, hashType=HASH_TYPES[kind])
    if f.ip is not None:
        _ip(root, "ipCaptureEvent", f.ip)
    if f.exif:
        det = _sub(root, "details", type="EXIF")
        for name, value in f.exif.items():
            pair = _sub(det, "nameValuePair")
            _sub(pair, "name", _clean(name))
            _sub(pair, "value", _clean(value))
    if f.note:
        _sub(root, "additionalInfo", _clean(f.note))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


@functools.cache
def schema() -> Any:
    """NCMEC's schema, parsed once per process."""
    return etree.XMLSchema(etree.parse(str(XSD_PATH)))


def validate(doc: bytes) -> list[str]:
    """The schema's complaints about ``doc`` ("line N: message"), empty when it validates."""
    try:
        tree = etree.parse(io.BytesIO(doc))
    except etree.XMLSyntaxError as exc:
        return [f"not well-formed XML: {exc}"]
    s = schema()
    if s.validate(tree):
        return []
    return [f"line {e.line}: {e.message}" for e in list(s.error_log)[:MAX_ERRORS]]
