"""A client for NCMEC's CyberTipline Reporting API: ``GET /status``, ``POST /submit``, ``/upload``,
``/fileinfo``, ``/finish``, ``/retract``, over HTTPS with Basic auth, through the egress policy's checked
client. Transient failures (timeouts, connection errors, 5xx, NCMEC's server-side codes) are retried with
backoff; every other answer is a :class:`NcmecError` with NCMEC's code and a clear message. Credentials
are never logged or put in an error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from lxml import etree

from safeguard.config import Settings
from safeguard.egress import EgressPolicy, checked_client, require_https
from safeguard.errors import ConfigError

#: NCMEC's documented response codes (API documentation, appendix D), with what they mean to an operator
CODES: dict[int, str] = {
    0: "success",
    1000: "NCMEC server error (retried)",
    1100: "NCMEC could not save (retried)",
    1110: "NCMEC upload failed (retried)",
    1111: "NCMEC file upload failed (retried)",
    1210: "resource not found at NCMEC",
    1300: "NCMEC update failed (retried)",
    2000: "authentication required: check SAFEGUARD_NCMEC_USERNAME and SAFEGUARD_NCMEC_PASSWORD",
    3000: "this NCMEC account may not perform this action",
    3100: "this NCMEC account may not make submissions: ask NCMEC to enable it",
    3300: "this NCMEC account may not make updates",
    4000: "NCMEC refused the request as invalid",
    4100: "NCMEC's validation failed: the report does not match its schema",
    4110: "NCMEC could not parse the XML",
    4200: "NCMEC could not read the uploaded file",
    5001: "the report does not exist at NCMEC (cancelled after its timeout?)",
    5002: "the file does not exist at NCMEC",
    5101: "the report is already retracted at NCMEC",
    5102: "the report is already finished at NCMEC",
}
TRANSIENT = frozenset({1000, 1100, 1110, 1111, 1300})
#: NCMEC's code for a report it no longer has (auto-cancelled 24 h after opening / 1 h after last change)
GONE = 5001


@dataclass
class NcmecError(Exception):
    code: int  # NCMEC's response code; -1 for no answer, -2 for an answer that is not NCMEC's XML
    message: str
    step: str
    http_status: int | None = None

    def __str__(self) -> str:
        return f"{self.step}: NCMEC {self.code}: {self.message}"

    @property
    def transient(self) -> bool:
        return self.code in TRANSIENT or self.code == -1 or (self.http_status or 0) >= 500


@dataclass(frozen=True)
class Answer:
    code: int
    description: str
    report_id: str | None = None
    file_id: str | None = None
    md5: str | None = None
    file_ids: tuple[str, ...] = field(default_factory=tuple)


def parse_answer(body: bytes) -> Answer:
    """A ``reportResponse`` / ``reportDoneResponse`` document (never resolving entities or DTDs)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(body, parser)

    def text(tag: str) -> str | None:
        el = root.find(tag)
        return el.text.strip() if el is not None and el.text else None

    code = text("responseCode")
    if code is None:
        raise ValueError("no responseCode")
    files = tuple(el.text.strip() for el in root.iter("fileId") if el.text)
    return Answer(int(code), text("responseDescription") or "", text("reportId"), text("fileId"), text("hash"), files)


class NcmecClient:
    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        http: httpx.Client,
        attempts: int = 5,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base = require_https(base_url, "SAFEGUARD_NCMEC_URL")
        self._auth = httpx.BasicAuth(username, password)
        self.http = http
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings, **kw: Any) -> NcmecClient:
        from safeguard import secrets

        if not settings.ncmec_username or not settings.ncmec_password:
            raise ConfigError("set SAFEGUARD_NCMEC_USERNAME and SAFEGUARD_NCMEC_PASSWORD", code="ncmec_credentials")
        if not secrets.is_sealed(settings.ncmec_password):
            raise ConfigError(
                "SAFEGUARD_NCMEC_PASSWORD must be sealed: safeguard secrets seal --purpose ncmec",
                code="ncmec_credentials",
            )
        password = secrets.open_(settings, settings.ncmec_password, purpose="ncmec")
        http = checked_client(EgressPolicy.from_settings(settings), httpx.Timeout(30.0, connect=10.0))
        return cls(settings.ncmec_url, settings.ncmec_username, password, http=http, **kw)

    def __repr__(self) -> str:  # never the credentials
        return f"NcmecClient({self.base!r})"

    # -- the documented calls ------------------------------------------------------------------------
    def status(self) -> Answer:
        return self._call("status", "GET", "/status")

    def submit(self, report_xml: bytes) -> Answer:
        a = self._call("submit", "POST", "/submit", content=report_xml, headers=_XML)
        if not a.report_id:
            raise NcmecError(-2, "NCMEC's answer named no report id", "submit")
        return a

    def upload(self, report_id: str, file_name: str, data: bytes) -> Answer:
        a = self._call("upload", "POST", "/upload", data={"id": report_id}, files={"file": (file_name, data)})
        if not a.file_id:
            raise NcmecError(-2, "NCMEC's answer named no file id", "upload")
        return a

    def fileinfo(self, details_xml: bytes) -> Answer:
        return self._call("fileinfo", "POST", "/fileinfo", content=details_xml, headers=_XML)

    def finish(self, report_id: str) -> Answer:
        return self._call("finish", "POST", "/finish", data={"id": report_id})

    def retract(self, report_id: str) -> Answer:
        return self._call("retract", "POST", "/retract", data={"id": report_id})

    # -- plumbing ------------------------------------------------------------------------------------
    def _call(self, step: str, method: str, path: str, **kw: Any) -> Answer:
        last: NcmecError | None = None
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                resp = self.http.request(method, self.base + path, auth=self._auth, **kw)
            except httpx.TimeoutException:
                last = NcmecError(-1, "NCMEC did not answer in time", step)
                continue
            except httpx.TransportError as exc:
                last = NcmecError(-1, f"could not reach NCMEC: {type(exc).__name__}", step)
                continue
            try:
                a = parse_answer(resp.content)
            except (ValueError, etree.XMLSyntaxError):
                if resp.status_code == 401:
                    raise NcmecError(2000, CODES[2000], step, 401) from None
                last = NcmecError(-2, f"NCMEC answered HTTP {resp.status_code} without its XML", step, resp.status_code)
                if resp.status_code >= 500:
                    continue
                raise last from None
            if a.code == 0:
                return a
            last = NcmecError(a.code, CODES.get(a.code, a.description or "unknown NCMEC error"), step, resp.status_code)
            if not last.transient:
                raise last
        assert last is not None
        raise last


_XML = {"Content-Type": "text/xml; charset=utf-8"}
