"""A local stand-in for NCMEC's CyberTipline Reporting API (loopback only), implementing the documented
endpoints (``/status``, ``/submit``, ``/upload``, ``/fileinfo``, ``/finish``, ``/retract``), their XML
answers and error codes, Basic auth, and the faults tests ask for: slow answers, 5xx, error codes, and a
*hold* that does the work and then waits before answering (so a test can kill the client mid-step).
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs

from lxml import etree

from tests.helpers.loopback_server import LoopbackServer

USER, PASSWORD = "esp-test", "s3cret-test-pass"


@dataclass
class NcmecReport:
    id: int
    xml: bytes
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # file id -> {name, md5, details}
    finished: bool = False
    retracted: bool = False


@dataclass
class Fault:
    path: str
    kind: str  # "500", "slow", "code:NNNN", "hold"
    count: int = 1
    after: int = 0  # let this many matching requests through first


class FakeNcmec(LoopbackServer):
    content_type = "application/xml"

    def __init__(self) -> None:
        super().__init__()
        self.reports: dict[int, NcmecReport] = {}
        self.next_id = 4564654
        self.faults: list[Fault] = []
        self.seen: dict[str, int] = {}
        self.slow_seconds = 2.0

    @property
    def url(self) -> str:
        return f"{self.origin}/ispws"

    def finished(self) -> list[NcmecReport]:
        return [r for r in self.reports.values() if r.finished]

    def _fault(self, path: str) -> Fault | None:
        with self.lock:
            self.seen[path] = self.seen.get(path, 0) + 1
        return self.take_fault(self.faults, lambda f: f.path == path)

    # -- the API -----------------------------------------------------------------------------------
    def respond(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, bytes]:
        auth = headers.get("Authorization", "")
        if auth != "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode():
            return 401, answer(2000, "Authentication required")
        fault = self._fault(path)
        if fault is not None and fault.kind == "500":
            return 500, b"<html>Internal Server Error</html>"
        if fault is not None and fault.kind == "slow":
            time.sleep(self.slow_seconds)
        if fault is not None and fault.kind.startswith("code:"):
            return 200, answer(int(fault.kind[5:]), "Injected")
        status, out = self._do(method, path, headers, body)
        if fault is not None and fault.kind == "hold":
            self.hold()
        return status, out

    def _do(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, bytes]:
        with self.lock:
            if path == "/ispws/status" and method == "GET":
                return 200, answer(0, "Success")
            if path == "/ispws/submit":
                try:
                    etree.fromstring(body)
                except etree.XMLSyntaxError:
                    return 400, answer(4110, "Malformed XML submittal")
                rid = self.next_id
                self.next_id += 1
                self.reports[rid] = NcmecReport(rid, body)
                return 200, answer(0, "Success", report_id=rid)
            if path == "/ispws/fileinfo":
                root = etree.fromstring(body)
                r = self.reports.get(int(root.findtext("reportId") or 0))
                fid = root.findtext("fileId") or ""
                if r is None:
                    return 200, answer(5001, "Report does not exist")
                if fid not in r.files:
                    return 200, answer(5002, "File does not exist")
                r.files[fid]["details"] = body
                return 200, answer(0, "Success", report_id=r.id)
            fields, files = form(headers, body)
            r = self.reports.get(int(fields.get("id") or 0))
            if r is None:
                return 200, answer(5001, "Report does not exist")
            if path == "/ispws/upload":
                if r.finished:
                    return 200, answer(5102, "Report already finished")
                if "file" not in files:
                    return 400, answer(4200, "Malformed file submittal")
                name, data = files["file"]
                fid = hashlib.md5(f"{r.id}:{len(r.files)}".encode()).hexdigest()
                md5 = hashlib.md5(data).hexdigest()
                r.files[fid] = {"name": name, "md5": md5, "details": None}
                return 200, answer(0, "Success", report_id=r.id, file_id=fid, md5=md5)
            if path == "/ispws/finish":
                if r.retracted:
                    return 200, answer(5101, "Report already retracted")
                if r.finished:
                    return 200, answer(5102, "Report already finished")
                r.finished = True
                return 200, done(r)
            if path == "/ispws/retract":
                if r.finished:
                    return 200, answer(5102, "Report already finished")
                if r.retracted:
                    return 200, answer(5101, "Report already retracted")
                r.retracted = True
                return 200, answer(0, "Success", report_id=r.id)
        return 404, answer(1210, "Resource not found")


def answer(code: int, text: str, *, report_id: int | None = None, file_id: str = "", md5: str = "") -> bytes:
    parts = [f"<responseCode>{code}</responseCode><responseDescription>{text}</responseDescription>"]
    if report_id is not None:
        parts.append(f"<reportId>{report_id}</reportId>")
    if file_id:
        parts.append(f"<fileId>{file_id}</fileId><hash>{md5}</hash>")
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><reportResponse>' + "".join(parts) + "</reportResponse>"
    ).encode()


def done(r: NcmecReport) -> bytes:
    files = "".join(f"<fileId>{f}</fileId>" for f in r.files)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><reportDoneResponse><responseCode>0</responseCode>'
        f"<reportId>{r.id}</reportId><files>{files}</files></reportDoneResponse>"
    ).encode()


def form(headers: Any, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    ctype = headers.get("Content-Type", "")
    if ctype.startswith("application/x-www-form-urlencoded"):
        return {k: v[0] for k, v in parse_qs(body.decode()).items()}, {}
    if not ctype.startswith("multipart/form-data"):
        return {}, {}
    msg = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + body)
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True) or b""
        if filename is not None:
            files[str(name)] = (filename, payload)
        else:
            fields[str(name)] = payload.decode()
    return fields, files
