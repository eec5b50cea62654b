"""Reports: building and validating one CyberTipline report, and the submitter's throughput against the
local NCMEC server (tests/reports/ncmec_server.py, loopback).

    python bench/reports_bench.py                   # SQLite, 100 reports
    python bench/reports_bench.py --reports 300 --postgres postgresql+psycopg://postgres@127.0.0.1:54329/rb

Sets up a fresh data directory: a CSAM-kind bank holding the PDQ hashes of benign generated images, one
matching upload per user (a case each, its image preserved in the vault), each case confirmed (A1) by a
moderator and its report approved by a second lead. Then times (1) ``gather`` + ``report_xml`` +
``validate`` per report (the database read included), and (2) one ``Submitter.run_once`` over every
approved report: submit, upload (decrypted from the vault in memory), fileinfo (with EXIF), finish, each
step committed. The log is appended to ``bench/results/reports_bench_<date>.txt``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.media_factory import image_bytes  # noqa: E402
from tests.reports.ncmec_server import PASSWORD, USER, FakeNcmec  # noqa: E402

from safeguard import secrets  # noqa: E402
from safeguard.accounts import Who  # noqa: E402
from safeguard.banks import BankService  # noqa: E402
from safeguard.cases import CaseService  # noqa: E402
from safeguard.config import Settings  # noqa: E402
from safeguard.content import Content, ContentKind  # noqa: E402
from safeguard.engine import Engine  # noqa: E402
from safeguard.media import Media  # noqa: E402
from safeguard.reports import ReportService  # noqa: E402
from safeguard.reports.gather import gather  # noqa: E402
from safeguard.reports.ncmec.client import NcmecClient  # noqa: E402
from safeguard.reports.ncmec.xml import report_xml, validate  # noqa: E402
from safeguard.reports.submitter import Submitter  # noqa: E402
from safeguard.signals.pdq import PDQSignal  # noqa: E402
from safeguard.store.models import Report  # noqa: E402

MOD = Who("user:mia", "moderator", "mia", "user", 1)
LEAD = Who("user:leo", "lead", "leo", "user", 2)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reports", type=int, default=100)
    ap.add_argument("--postgres", default="")
    args = ap.parse_args()
    fake = FakeNcmec().start()
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings(
            data_dir=tmp,
            database_url=args.postgres,
            reporter_organisation="Bench Platform",
            reporter_contact="Ann Lee",
            reporter_email="safety@example.org",
            egress_allow="127.0.0.1",
            run_worker=False,
            index_refresh_seconds=0.0,
            ncmec_url=fake.url,
            ncmec_username=USER,
        )
        s = s.with_(ncmec_password=secrets.seal(s, PASSWORD, purpose="ncmec"))
        engine = Engine(s, start_actions=True)
        banks = BankService(engine.db)
        banks.create("csam", actor="bench", default_category="A1")
        cs = CaseService(engine.db, s, banks)
        t0 = time.perf_counter()
        for i in range(args.reports):
            data = image_bytes(1000 + i)
            pdq = PDQSignal().compute(Media.from_bytes(data))[0]
            banks.add_entry("csam", signal_type="pdq", value=pdq.value, actor="bench")
            d = engine.scan(
                Content(
                    kind=ContentKind.IMAGE,
                    data=data,
                    content_id=f"c{i}",
                    user_id=f"u{i}",
                    filename=f"upload-{i}.jpg",
                    user_info={"ip": "192.0.2.1", "port": 40000 + i},
                )
            )
            assert d.case_id is not None
            cs.claim(MOD, d.case_id)
            cs.decide(MOD, d.case_id, outcome="confirmed", category="A1")
        rs = ReportService(engine.db, s)
        ids: list[int] = []
        cursor: str | None = None
        while True:
            page, cursor = rs.list_reports(LEAD, cursor=cursor, limit=200)
            ids += [r.id for r in page]
            if cursor is None:
                break
        assert len(ids) == args.reports, len(ids)
        setup = time.perf_counter() - t0
        build: list[float] = []
        for rid in ids:
            t = time.perf_counter()
            with engine.db.read() as db:
                r = db.get(Report, rid)
                assert r is not None
                data_, _ = gather(db, r, s)
            assert validate(report_xml(data_)) == []
            build.append((time.perf_counter() - t) * 1000)
        for rid in ids:
            rs.approve(LEAD, rid)
        sub = Submitter(engine.db, s, NcmecClient.from_settings(s))
        t = time.perf_counter()
        got = sub.run_once()
        elapsed = time.perf_counter() - t
        assert len(got.finished) == len(ids) and len(fake.finished()) == len(ids), got.to_dict()
        engine.close()
    fake.stop()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    db_name = "postgresql" if args.postgres else "sqlite"
    lines = [
        f"# reports_bench {datetime.now(UTC).isoformat(timespec='seconds')} commit {commit.strip()} db {db_name}",
        f"reports: {len(ids)} (setup {setup:.1f} s)",
        "| measure | median | p95 | max |",
        "|---|---|---|---|",
        f"| build + validate one report (ms) | {statistics.median(build):.2f} | {pct(build, 95):.2f} | {max(build):.2f} |",
        f"| submitter: {len(ids)} reports, 4 calls each | {len(ids) / elapsed * 60:.0f} reports/min | "
        f"{elapsed / len(ids) * 1000:.1f} ms/report | {elapsed:.2f} s total |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "bench" / "results" / f"reports_bench_{datetime.now(UTC).date().isoformat()}.txt"
    with out.open("a") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
