"""The report submitter, run continuously: every ``SAFEGUARD_REPORTS_SUBMIT_INTERVAL_SECONDS`` (0: off) a
daemon thread in each service process runs one submitter pass (:class:`safeguard.reports.submitter.Submitter`)
over the approved and unfinished reports, as ``safeguard reports submit`` does once.

Every process may run it: a report is worked only under its lock (:mod:`safeguard.reports.locks`), so one
submitter at a time sends a given report, and each step is committed before and after its call, so a pass
stopped anywhere (a killed process) is resumed by the next pass of any process. Missing credentials or a
database hiccup are logged and tried again next time; they never stop the service.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from safeguard.config import Settings
from safeguard.reports.ncmec.client import NcmecClient
from safeguard.reports.submitter import RunResult, Submitter
from safeguard.store import Database

log = logging.getLogger(__name__)


class ReportSubmitterWorker:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        client: Callable[[Settings], NcmecClient] = NcmecClient.from_settings,
    ) -> None:
        self.db = db
        self.settings = settings
        self.interval = settings.reports_submit_interval_seconds
        self._client = client
        self._submitter: Submitter | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False
        self.passes = 0  # completed passes (tests and /metrics-style checks read it)

    def tick(self) -> RunResult:
        """One pass (the submitter and its NCMEC client are made on first use)."""
        if self._submitter is None:
            self._submitter = Submitter(self.db, self.settings, self._client(self.settings))
        got = self._submitter.run_once()
        self.passes += 1
        if any(got.to_dict().values()):
            log.info("report submitter: %s", {k: v for k, v in got.to_dict().items() if v})
        return got

    def run_forever(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
                self._warned = False
            except Exception as exc:  # credentials not set yet, a database hiccup: say so, try again later
                if not self._warned:
                    log.warning("report submitter pass failed (retrying every %ss): %s", self.interval, exc)
                    self._warned = True

    def start(self) -> None:
        if self.interval <= 0:
            return
        self._thread = threading.Thread(target=self.run_forever, name="safeguard-report-submitter", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
