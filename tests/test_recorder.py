"""Group commit: concurrent writers share transactions, failures stay their own, the chain stays whole."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from safeguard import events
from safeguard.content import Content, ContentKind, Signal
from safeguard.engine import Engine
from safeguard.store import Database, recorder
from safeguard.store.models import DecisionRow, Event
from safeguard.store.recorder import Bulk, Recorder


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


# -- plain-row writes (Bulk): allow decisions are recorded without an ORM object per row ----------


def _allow(engine: Engine, content_id: str) -> Bulk:
    c = Content(kind=ContentKind.HASHES, signals=(Signal("md5", "0" * 32),), content_id=content_id)
    work = engine.prepare(c, actor="test")
    assert isinstance(work, Bulk)  # nothing matched, no actions: the lean path
    return work


def test_lean_allow_record_matches_the_decision(engine: Engine) -> None:
    c = Content(kind=ContentKind.HASHES, signals=(Signal("md5", "0" * 32),), content_id="c1", user_id="u1")
    d = engine.scan(c, actor="tester")
    assert d.verdict.value == "allow"
    body = engine.get_decision(d.id)
    assert body == dict(d.to_dict(), status="done")
    with engine.db.read() as s:
        row = s.get(DecisionRow, d.id)
        assert row is not None and (row.verdict, row.content_id, row.user_id) == ("allow", "c1", "u1")
        evs = s.execute(select(Event).where(Event.subject_id == d.id)).scalars().all()
        assert [(e.type, e.actor, e.subject_kind) for e in evs] == [("decision.created", "tester", "decision")]
        assert evs[0].payload["verdict"] == "allow" and evs[0].payload["content_id"] == "c1"
        assert events.verify(s).ok


def test_mixed_batch_of_functions_and_rows_one_transaction(engine: Engine) -> None:
    """Functions run in savepoints, all plain rows go in one INSERT per table; the chain covers both."""
    rec = engine.recorder

    def orm_work(s: Session) -> str:
        events.append(s, "test.orm", actor="t")
        return "orm"

    works: list[object] = [_allow(engine, "a"), orm_work, _allow(engine, "b"), _allow(engine, "c")]
    futures: list[Future[object]] = [Future() for _ in works]
    rec._commit(list(zip(works, futures, strict=True)))  # type: ignore[arg-type]
    results = [f.result() for f in futures]
    assert results[1] == "orm" and [r.content_id for r in results if r != "orm"] == ["a", "b", "c"]  # type: ignore[union-attr]
    with engine.db.read() as s:
        assert s.execute(select(func.count()).select_from(DecisionRow)).scalar_one() == 3
        types = s.execute(select(Event.type).order_by(Event.seq)).scalars().all()
        assert sorted(types) == ["decision.created"] * 3 + ["test.orm"]
        assert events.verify(s).ok


@pytest.mark.parametrize("with_function", [False, True])
def test_a_failing_row_fails_alone(engine: Engine, with_function: bool) -> None:
    """A plain-row batch that fails (here: a duplicate decision id) is retried item by item, on the Core
    path (rows only) and the session path (rows mixed with functions): only the bad item fails."""
    good1, good2 = _allow(engine, "g1"), _allow(engine, "g2")
    dup = _allow(engine, "dup")
    engine.recorder.submit(dup)  # now its decision id exists
    works: list[object] = [good1, dup, good2]
    if with_function:
        works.insert(1, lambda s: events.append(s, "test.fn", actor="t") and "fn")
    futures: list[Future[object]] = [Future() for _ in works]
    engine.recorder._commit(list(zip(works, futures, strict=True)))  # type: ignore[arg-type]
    failed = [w is dup for w, f in zip(works, futures, strict=True) if f.exception() is not None]
    assert failed == [True]
    with engine.db.read() as s:
        ids = set(s.execute(select(DecisionRow.content_id)).scalars())
        assert ids == {"g1", "g2", "dup"}
        n_created = s.execute(select(func.count()).where(Event.type == "decision.created")).scalar_one()
        assert n_created == 3  # the duplicate's second event was rolled back with its row
        assert events.verify(s).ok


def test_append_many_core_and_orm_appends_share_one_chain(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()
    with db.write_connection() as conn:  # a fresh database: the Core path creates the head
        assert events.append_many_core(conn, [events.EventDraft("t.core", "a", None, {"n": 1})]) == 1
    with db.write() as s:
        events.append(s, "t.orm", actor="a", payload={"n": 2})
        events.append_many(s, [events.EventDraft("t.many", "a", ("x", "1"), {"n": i}) for i in range(3)])
        events.append(s, "t.orm", actor="a", payload={"n": 6})
    with db.write_connection() as conn:
        assert events.append_many_core(conn, [events.EventDraft("t.core", "a", None, {"n": 7})]) == 7
    with db.read() as s:
        assert [e.payload["n"] for e in events.iter_events(s)] == [1, 2, 0, 1, 2, 6, 7]
        assert events.verify(s) == events.VerifyResult(True, 7)
        # tampering is still caught in rows written in bulk
        s.execute(Event.__table__.update().where(Event.seq == 4).values(payload={"n": 99}))
        assert events.verify(s).first_bad_seq == 4
    db.dispose()


def test_scan_async_records_before_returning(engine: Engine) -> None:
    import asyncio

    inline = Content(kind=ContentKind.HASHES, signals=(Signal("md5", "0" * 32),))
    threaded = Content(kind=ContentKind.HASHES, signals=(Signal("md5", "0" * 32),) * 9)
    assert engine.inline_ok(inline) and not engine.inline_ok(threaded)

    async def many() -> list[str]:
        scans = [engine.scan_async(inline if i % 2 else threaded) for i in range(50)]
        return [d.id for d in await asyncio.gather(*scans)]

    ids = asyncio.run(many())
    with engine.db.read() as s:
        assert set(s.execute(select(DecisionRow.id)).scalars()) == set(ids)
        assert events.verify(s).ok


def _record_allows(url: str, n: int) -> None:
    """Runs in a separate process: an API worker recording decisions into the shared database."""
    from safeguard.config import Settings as _Settings

    e = Engine(_Settings(database_url=url, run_worker=False), migrate=False)
    c = Content(kind=ContentKind.HASHES, signals=(Signal("md5", "0" * 32),))
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: e.scan(c), range(n)))
    e.close()


def test_worker_processes_share_one_database_and_chain(db_url: str) -> None:
    """Several processes (as with `safeguard serve --workers 3`) record into one database: with SQLite
    they queue on the writer lock, with PostgreSQL on the chain head row; nothing is lost or forked."""
    import multiprocessing

    db = Database(db_url)
    db.migrate()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_record_allows, args=(db_url, 40)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with db.read() as s:
        assert s.execute(select(func.count()).select_from(DecisionRow)).scalar_one() == 120
        assert events.verify(s) == events.VerifyResult(True, 120)
    db.dispose()


def test_sqlite_writers_wait_on_the_file_lock(tmp_path: Path) -> None:
    """A second writer (another Database, as another process would have) blocks until the first commits."""
    import threading

    url = f"sqlite:///{tmp_path / 'x.db'}"
    a, b = Database(url), Database(url)
    a.migrate()
    entered = threading.Event()

    def second() -> None:
        with b.write():
            entered.set()

    with a.write() as s:
        events.append(s, "t.first", actor="a")
        t = threading.Thread(target=second)
        t.start()
        assert not entered.wait(0.3)  # still waiting for the lock
    assert entered.wait(30)
    t.join()
    assert Path(str(tmp_path / "x.db") + ".writelock").exists()
    a.dispose()
    b.dispose()


# -- rerunnable writes: a batch shares one savepoint, and reruns one by one only when that fails ----


def test_rerunnable_writes_share_a_savepoint_and_fail_alone(db_url: str) -> None:
    from safeguard.store.recorder import Rerunnable

    db = Database(db_url)
    db.migrate()
    rec = Recorder(db)
    runs: dict[int, int] = {}

    def write(i: int, fail: bool) -> Rerunnable:
        def work(s: Session) -> int:
            runs[i] = runs.get(i, 0) + 1  # observed by the test only: counts the reruns
            events.append(s, "test.ok" if not fail else "test.bad", actor="t", payload={"i": i})
            if fail:
                raise ValueError(f"write {i} fails")
            return i

        return Rerunnable(work)

    # all succeed: one savepoint, each ran once
    futures: list[Future[object]] = [Future() for _ in range(5)]
    rec._commit([(write(i, False), f) for i, f in enumerate(futures)])
    assert [f.result() for f in futures] == [0, 1, 2, 3, 4] and set(runs.values()) == {1}
    # one fails: the shared savepoint is rolled back, each write reruns alone, only the bad one fails
    runs.clear()
    futures = [Future() for _ in range(5)]
    rec._commit([(write(10 + i, i == 2), f) for i, f in enumerate(futures)])
    assert [f.exception() is None for f in futures] == [True, True, False, True, True]
    assert runs == {10: 2, 11: 2, 12: 2, 13: 1, 14: 1}  # the bad one stopped the shared run at 12
    with db.read() as s:
        got = s.execute(select(Event.type, Event.payload).order_by(Event.seq)).all()
        assert [p["i"] for t, p in got] == [0, 1, 2, 3, 4, 10, 11, 13, 14]
        assert {t for t, _ in got} == {"test.ok"}
        assert events.verify(s).ok
    db.dispose()


def test_matches_are_rerunnable_unless_an_action_is_not(engine: Engine) -> None:
    from safeguard.actions.base import ActionContext, ActionHandler
    from safeguard.banks import BankService
    from safeguard.content import Action
    from safeguard.store.recorder import Rerunnable

    BankService(engine.db).create("b", actor="t", default_category="A1")
    BankService(engine.db).add_entry("b", signal_type="md5", value="1" * 32, actor="t")
    hit = Content(kind=ContentKind.HASHES, signals=(Signal("md5", "1" * 32),), user_id="u1")
    work = engine.prepare(hit)
    assert isinstance(work, Rerunnable)  # block, case, webhook: database writes only

    class Remote(ActionHandler):  # a plug-in that does not say it may run twice
        name = "case"

        def run(self, action: Action, ctx: ActionContext) -> dict[str, object]:
            return {}

    engine.action_handlers["case"] = Remote()
    work = engine.prepare(hit)
    assert callable(work) and not isinstance(work, Rerunnable | Bulk)
    assert engine.recorder.submit(work).verdict.value == "block"


def test_a_batch_of_matches_writes_its_rows_and_events_once_and_fails_alone(engine: Engine) -> None:
    """Matches batched in one savepoint hand their decision rows and events to the batch
    (``recorder.collecting``), which writes them after the last one: every decision is recorded with
    its case and its events in order (decision.created, then its actions'); one failing write rolls
    the batch back and the others are recorded one by one, as before."""
    from safeguard.banks import BankService
    from safeguard.store.models import Case
    from safeguard.store.recorder import Rerunnable, collecting

    BankService(engine.db).create("b", actor="t", default_category="A1")
    BankService(engine.db).add_entry("b", signal_type="md5", value="1" * 32, actor="t")

    def hit(cid: str) -> Rerunnable:
        work = engine.prepare(Content(kind=ContentKind.HASHES, signals=(Signal("md5", "1" * 32),), content_id=cid))
        assert isinstance(work, Rerunnable)
        return work

    def broken(s: Session) -> None:
        raise ValueError("this write fails")

    seen: list[object] = []

    def probe(s: Session) -> str:  # a rerunnable write sees the batch's collector while it runs
        seen.append(collecting(s))
        return "probe"

    for works in (
        [hit("h1"), hit("h2"), Rerunnable(probe), hit("h3")],
        [hit("h4"), Rerunnable(probe), Rerunnable(broken), hit("h5")],
    ):
        futures: list[Future[object]] = [Future() for _ in works]
        engine.recorder._commit(list(zip(works, futures, strict=True)))  # type: ignore[arg-type]
        for w, f in zip(works, futures, strict=True):
            assert (f.exception() is not None) == (w.fn is broken)
    # batched twice; then alone, when the second batch reran one write at a time
    assert isinstance(seen[0], Bulk) and isinstance(seen[1], Bulk) and seen[2:] == [None]
    with engine.db.read() as s:
        rows = s.execute(select(DecisionRow.content_id, DecisionRow.verdict, DecisionRow.case_id)).all()
        assert sorted(r[0] for r in rows) == ["h1", "h2", "h3", "h4", "h5"]
        assert {r[1] for r in rows} == {"block"} and all(r[2] for r in rows)
        assert s.execute(select(func.count()).select_from(Case)).scalar_one() >= 1
        evs = s.execute(select(Event.subject_id, Event.type).order_by(Event.seq)).all()
        ids = {r[0]: r for r in s.execute(select(DecisionRow.content_id, DecisionRow.id)).all()}
        for cid in ("h1", "h2", "h3", "h4", "h5"):
            mine = [t for sid, t in evs if sid == ids[cid][1]]
            assert mine[0] == "decision.created" and len(mine) > 1 and all(t.startswith("action.") for t in mine[1:])
        assert events.verify(s).ok


def test_async_waiters_get_their_batch_in_one_handover_and_survive_a_cancelled_one(tmp_path: Path) -> None:
    """submit_async callers of one loop are answered together once their batch has committed (one
    call into the loop per batch); a caller cancelled while its write commits loses nothing for the
    others, and its write still lands."""
    import asyncio
    import threading

    from safeguard.store.models import EntryChange

    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    db.migrate()
    rec = Recorder(db)
    gate = threading.Event()

    def hold(s: Session) -> str:  # keeps the writer busy while the next batch queues up
        gate.wait(10)
        return "held"

    def change(i: int) -> Bulk:
        return Bulk(rows=[(EntryChange.__table__, {"bank_id": i, "op": "bank"})], result=i)  # type: ignore[list-item]

    async def main() -> tuple[list[object], int]:
        loop = asyncio.get_running_loop()
        calls = 0
        real = loop.call_soon_threadsafe

        def counting(*a: object, **kw: object) -> object:
            nonlocal calls
            calls += 1
            return real(*a, **kw)  # type: ignore[arg-type]

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        first = asyncio.ensure_future(rec.submit_async(hold))
        await asyncio.sleep(0.05)  # the writer is now inside the first batch
        tasks = [asyncio.ensure_future(rec.submit_async(change(i))) for i in range(1, 6)]
        await asyncio.sleep(0.05)
        tasks[2].cancel()
        calls = 0
        gate.set()
        got = await asyncio.gather(first, *tasks, return_exceptions=True)
        return got, calls

    got, calls = asyncio.run(main())
    assert got[0] == "held" and got[1:3] == [1, 2] and got[4:] == [4, 5]
    assert isinstance(got[3], asyncio.CancelledError)
    assert calls == 2  # the held batch's answer, then one handover for the five together
    with db.read() as s:
        assert sorted(s.execute(select(EntryChange.bank_id)).scalars()) == [1, 2, 3, 4, 5]
    rec.close()
    db.dispose()


# -- the writer thread's own connection ------------------------------------------------------------


def test_the_writer_keeps_one_connection_and_replaces_a_broken_one(engine: Engine) -> None:
    """Batches of plain rows run on a connection the recorder keeps between transactions. One that
    breaks fails its batch over to the item-by-item path (nothing is lost) and is replaced."""
    rec = engine.recorder

    def run(*names: str) -> None:
        works = [_allow(engine, n) for n in names]
        futures: list[Future[object]] = [Future() for _ in works]
        rec._commit(list(zip(works, futures, strict=True)))  # type: ignore[arg-type]
        assert all(f.result().verdict.value == "allow" for f in futures)  # type: ignore[attr-defined]

    run("a1", "a2")
    kept = rec._conn
    assert kept is not None
    run("b1")
    assert rec._conn is kept  # no new connection per transaction
    kept.connection.driver_connection.close()  # type: ignore[union-attr]  # lost under the recorder
    run("c1", "c2")  # the bulk write fails; each item is retried on its own session
    assert rec._conn is None
    run("d1")
    assert rec._conn is not None and rec._conn is not kept
    with engine.db.read() as s:
        assert set(s.execute(select(DecisionRow.content_id)).scalars()) == {"a1", "a2", "b1", "c1", "c2", "d1"}
        assert events.verify(s).ok


def test_a_forked_child_leaves_its_parents_connection_alone(db_url: str) -> None:
    """After a fork the writer thread is started again in the child; the connection the parent kept is
    neither used nor closed there (it is the parent's), and the child opens its own."""
    db = Database(db_url)
    db.migrate()
    rec = Recorder(db)
    parents = db.connect_writer()
    rec._conn, rec._pid = parents, -1  # what a forked child sees: another process's thread and connection
    try:
        rec._ensure_thread()
        assert rec._conn is None and recorder._INHERITED[-1] is parents
        assert rec.submit(Bulk(events=[events.EventDraft("t.child", "test")], result="ok")) == "ok"
        assert rec._conn is not None and rec._conn is not parents
        assert not parents.closed
    finally:
        rec.close()
        recorder._INHERITED.remove(parents)
        parents.close()
    assert rec._conn is None  # the thread closed its own on the way out
    with db.read() as s:
        assert s.execute(select(Event.type)).scalars().all() == ["t.child"]
    db.dispose()
