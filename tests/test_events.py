"""The event chain detects any edit, deletion or insertion."""

from __future__ import annotations

from sqlalchemy import delete, select, update

from safeguard import events
from safeguard.store import Database
from safeguard.store.models import Event


def fill(db: Database, n: int = 5) -> None:
    for i in range(n):
        with db.write() as s:
            events.append(s, "test.event", actor="t", subject=("thing", str(i)), payload={"i": i, "f": 0.5, "s": "é"})


def test_chain_verifies(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()
    fill(db)
    with db.read() as s:
        r = events.verify(s)
    assert r.ok and r.checked == 5


def test_edit_detected(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()
    fill(db)
    with db.write() as s:
        s.execute(update(Event).where(Event.seq == 3).values(payload={"i": 99, "f": 0.5, "s": "é"}))
    with db.read() as s:
        r = events.verify(s)
    assert not r.ok and r.first_bad_seq == 3 and "content changed" in r.problem


def test_deletion_detected(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()
    fill(db)
    with db.write() as s:
        s.execute(delete(Event).where(Event.seq == 2))
    with db.read() as s:
        r = events.verify(s)
    assert not r.ok and r.first_bad_seq == 3


def test_truncation_detected(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()
    fill(db)
    with db.write() as s:
        s.execute(delete(Event).where(Event.seq == 5))
    with db.read() as s:
        r = events.verify(s)
    assert not r.ok and "truncated" in r.problem


def test_rewritten_history_detected(db_url: str) -> None:
    """Recomputing one event's own hash after editing it still breaks the next link."""
    db = Database(db_url)
    db.migrate()
    fill(db)
    with db.write() as s:
        ev = s.execute(select(Event).where(Event.seq == 2)).scalar_one()
        ev.payload = {"i": 42}
        ev.hash = events.event_hash(
            ev.prev_hash, ev.seq, ev.created_at, ev.type, ev.actor, ev.subject_kind, ev.subject_id, ev.payload
        )
    with db.read() as s:
        r = events.verify(s)
    assert not r.ok and r.first_bad_seq == 3 and "link" in r.problem


def test_a_session_reused_after_commit_chains_onto_other_writers(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()
    s = db._write()  # one Session object for two transactions, as a long-lived worker might hold it
    with s.begin():
        events.append(s, "test.a", actor="t")
    fill(db, 2)  # another session moves the head meanwhile
    with s.begin():
        events.append(s, "test.a", actor="t")
    s.close()
    with db.read() as r:
        assert events.verify(r).ok and events.verify(r).checked == 4


def test_an_append_in_a_rolled_back_savepoint_is_forgotten(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()
    fill(db, 1)
    with db.write() as s:
        events.append(s, "test.kept", actor="t")
        try:
            with s.begin_nested():
                events.append_many(s, [events.EventDraft("test.dropped", "t")])
                raise RuntimeError("roll this savepoint back")
        except RuntimeError:
            pass
        events.append(s, "test.kept", actor="t")
    with db.read() as r:
        assert events.verify(r).ok
        assert [e.type for e in events.iter_events(r)] == ["test.event", "test.kept", "test.kept"]


def test_appends_across_released_savepoints_chain(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()
    with db.write() as s:
        for i in range(3):
            with s.begin_nested():  # released: its append and head update stay in the transaction
                events.append_many(s, [events.EventDraft("test.inner", "t", payload={"i": i})])
            events.append(s, "test.outer", actor="t")
    with db.read() as r:
        result = events.verify(r)
        assert result.ok and result.checked == 6
