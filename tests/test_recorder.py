"""Group commit: concurrent writers share transactions, failures stay their own, the chain stays whole."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from safeguard import events
from safeguard.content import Content, ContentKind, Signal
from safeguard.engine import Engine
from safeguard.store import Database
from safeguard.store.models import DecisionRow, Event
from safeguard.store.recorder import Recorder


def test_concurrent_scans_are_all_recorded(engine: Engine) -> None:
    c = Content(kind=ContentKind.HASHES, signals=(Signal("md5", "0" * 32),))
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda _: engine.scan(c).id, range(200)))
    assert len(set(ids)) == 200
    with engine.db.read() as s:
        assert s.execute(select(func.count()).select_from(DecisionRow)).scalar_one() == 200
        assert events.verify(s).ok
    assert engine.recorder.items == 200


def test_a_failing_write_does_not_undo_its_batch(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()
    rec = Recorder(db)

    def ok(i: int) -> object:
        def work(s: Session) -> int:
            events.append(s, "test.ok", actor="t", payload={"i": i})
            return i

        return work

    def bad(s: Session) -> None:
        events.append(s, "test.bad", actor="t")
        raise ValueError("this caller's own failure")

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(rec.submit, bad if i % 10 == 0 else ok(i)) for i in range(100)]  # type: ignore[arg-type]
    results = []
    for i, f in enumerate(futures):
        if i % 10 == 0:
            with pytest.raises(ValueError):
                f.result()
        else:
            results.append(f.result())
    assert results == [i for i in range(100) if i % 10]
    with db.read() as s:
        types = s.execute(select(Event.type)).scalars().all()
        assert types.count("test.ok") == 90 and "test.bad" not in types
        assert events.verify(s).ok
    rec.close()
    db.dispose()


def test_a_failure_that_created_the_chain_head_does_not_poison_the_batch(db_url: str) -> None:
    """Regression: the first event of a fresh database creates the chain head inside a savepoint; when
    that caller fails, the savepoint's rollback takes the head with it and the others must not reuse it."""
    from concurrent.futures import Future

    db = Database(db_url)
    db.migrate()
    rec = Recorder(db)

    def bad(s: Session) -> None:
        events.append(s, "test.bad", actor="t")
        s.flush()
        raise ValueError("fails after writing")

    def ok(s: Session) -> int:
        events.append(s, "test.ok", actor="t")
        s.flush()
        return 1

    futures: list[Future[object]] = [Future() for _ in range(4)]
    rec._commit(list(zip([bad, ok, bad, ok], futures, strict=True)))
    assert [f.exception() is None for f in futures] == [False, True, False, True]
    with db.read() as s:
        assert s.execute(select(Event.type).order_by(Event.seq)).scalars().all() == ["test.ok", "test.ok"]
        assert events.verify(s).ok
    db.dispose()
