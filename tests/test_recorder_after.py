"""The recorder's AfterCommit hooks: local work running beside a write is waited for before the submitter
returns, told when the write committed, and told when it did not (sync and async submit)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from safeguard.store import Database
from safeguard.store.recorder import AfterCommit, Once, Recorder, Rerunnable


class Hook(AfterCommit):
    def __init__(self, future: Future[Any]) -> None:
        super().__init__(future)
        self.calls: list[str] = []

    def committed(self) -> None:
        self.calls.append("committed")

    def abandoned(self) -> None:
        self.calls.append("abandoned")


def slow(seconds: float, error: Exception | None = None) -> Future[Any]:
    fut: Future[Any] = Future()

    def finish() -> None:
        time.sleep(seconds)
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)

    threading.Thread(target=finish, daemon=True).start()
    return fut


@pytest.fixture
def recorder(db_url: str) -> Any:
    db = Database(db_url)
    db.migrate()
    r = Recorder(db)
    yield r
    r.close()
    db.dispose()


def write(s: Session) -> str:
    s.execute(text("SELECT 1"))
    return "written"


def fail(s: Session) -> str:
    raise RuntimeError("the write failed")


@pytest.mark.parametrize("kind", [Rerunnable, Once])
def test_submit_waits_for_the_local_work_then_reports_the_commit(recorder: Recorder, kind: type) -> None:
    hook = Hook(slow(0.3))
    t = time.perf_counter()
    assert recorder.submit(kind(write, (hook,))) == "written"
    assert time.perf_counter() - t >= 0.29 and hook.future.done() and hook.calls == ["committed"]


def test_a_failed_write_abandons_the_local_work(recorder: Recorder) -> None:
    hook = Hook(slow(0.05))
    with pytest.raises(RuntimeError, match="the write failed"):
        recorder.submit(Rerunnable(fail, (hook,)))
    assert hook.calls == ["abandoned"]


def test_failed_local_work_is_raised_after_the_commit(recorder: Recorder) -> None:
    hook = Hook(slow(0.05, OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        recorder.submit(Rerunnable(write, (hook,)))
    assert hook.calls == []  # neither committed (its work failed) nor abandoned (the write committed)


def test_submit_async_waits_too(recorder: Recorder) -> None:
    async def main() -> tuple[str, float]:
        hook = Hook(slow(0.3))
        t = time.perf_counter()
        got = await recorder.submit_async(Rerunnable(write, (hook,)))
        assert hook.calls == ["committed"]
        return got, time.perf_counter() - t

    got, took = asyncio.run(main())
    assert got == "written" and took >= 0.29
