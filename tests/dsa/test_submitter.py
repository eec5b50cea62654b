"""The statement submitter against a local Transparency Database (loopback): batches, the duplicate-puid
answer, validation errors left for a person, 5xx and slow answers retried, a refused token. SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from safeguard.banks import BankService
from safeguard.config import Settings
from safeguard.dsa.client import DsaClient
from safeguard.dsa.submitter import StatementSubmitter
from safeguard.engine import Engine
from safeguard.errors import ConfigError
from safeguard.store.models import Event, Statement
from tests.dsa.dsa_server import TOKEN, FakeDsa, Fault
from tests.helpers.dsa import blocks, dsa_settings, statements


@pytest.fixture
def dsa() -> Iterator[FakeDsa]:
    fake = FakeDsa().start()
    yield fake
    fake.stop()


def submitter(engine: Engine, s: Settings, **kw: object) -> StatementSubmitter:
    return StatementSubmitter(engine.db, s, DsaClient.from_settings(s, backoff=0.01, **kw))  # type: ignore[arg-type]


def states(engine: Engine) -> dict[str, str]:
    return {s.puid: s.state for s in statements(engine)}


def event_types(engine: Engine) -> list[str]:
    with engine.db.read() as s:
        q = select(Event.type).where(Event.subject_kind == "statement_batch").order_by(Event.seq)
        return list(s.execute(q).scalars())


def test_statements_go_in_batches_exactly_once(engine: Engine, banks: BankService, dsa: FakeDsa) -> None:
    ids = blocks(engine, banks, 5)
    s = dsa_settings(engine, dsa, dsa_batch_size=2)
    got = submitter(engine, s).run_once()
    assert sorted(got.submitted) == sorted(ids) and got.batches == 3 and got.error is None
    assert dsa.posted == [2, 2, 1] and set(dsa.stored) == set(ids)
    rows = statements(engine)
    assert all(r.state == "submitted" and r.uuid == dsa.stored[r.puid]["uuid"] for r in rows)
    assert all(r.submitted_at is not None and r.attempts == 1 for r in rows)
    assert submitter(engine, s).run_once().batches == 0  # nothing sent twice
    assert dsa.calls == 3
    assert event_types(engine) == ["statements.sending", "statements.submitted"] * 3
    with engine.db.read() as db:
        ev = db.execute(select(Event).where(Event.type == "statements.submitted")).scalars().first()
        assert ev is not None and ev.payload["submitted"] == ids[:2] and ev.payload["http_status"] == 201


def test_a_puid_the_database_already_has_counts_as_submitted(engine: Engine, banks: BankService, dsa: FakeDsa) -> None:
    ids = blocks(engine, banks, 3)
    with engine.db.read() as s:  # the database got the second one before (an answer lost in a crash)
        body = s.execute(select(Statement.body).where(Statement.puid == ids[1])).scalar_one()
    dsa.stored[ids[1]] = dict(body, uuid="earlier")
    got = submitter(engine, dsa_settings(engine, dsa)).run_once()
    assert got.already == [ids[1]] and sorted(got.submitted) == sorted([ids[0], ids[2]])
    assert set(states(engine).values()) == {"submitted"}
    assert dsa.posted == [2]  # refused whole once (422 existing_puids), then the other two alone
    assert len(dsa.stored) == 3


def test_validation_errors_are_kept_per_statement_for_a_person(
    engine: Engine, banks: BankService, dsa: FakeDsa
) -> None:
    good = blocks(engine, banks, 2)
    # a legal ground left empty: the database refuses these statements (required when illegal content)
    bad_engine = Engine(engine.settings.with_(dsa_illegal_ground=""), engine.db, migrate=False)
    try:
        bad = blocks(bad_engine, BankService(engine.db), 1)
    finally:
        bad_engine.recorder.close()
    more = blocks(engine, banks, 1)
    got = submitter(engine, dsa_settings(engine, dsa)).run_once()
    assert got.invalid == bad and sorted(got.submitted) == sorted(good + more)
    st = states(engine)
    assert st[bad[0]] == "invalid" and all(st[p] == "submitted" for p in good + more)
    [row] = [r for r in statements(engine) if r.puid == bad[0]]
    assert row.errors is not None and "illegal_content_legal_ground" in row.errors
    assert bad[0] not in dsa.stored
    assert submitter(engine, dsa_settings(engine, dsa)).run_once().batches == 0  # left for a person, not resent


def test_5xx_is_retried_with_backoff(engine: Engine, banks: BankService, dsa: FakeDsa) -> None:
    ids = blocks(engine, banks, 2)
    dsa.faults.append(Fault("500", count=2))
    slept: list[float] = []
    got = submitter(engine, dsa_settings(engine, dsa), sleep=slept.append).run_once()
    assert sorted(got.submitted) == sorted(ids) and slept == [0.01, 0.02]
    assert dsa.calls == 3 and len(dsa.stored) == 2


def test_a_database_that_stays_down_leaves_the_batch_for_the_next_run(
    engine: Engine, banks: BankService, dsa: FakeDsa
) -> None:
    ids = blocks(engine, banks, 2)
    dsa.faults.append(Fault("500", count=5))
    s = dsa_settings(engine, dsa)
    got = submitter(engine, s, attempts=3).run_once()
    assert got.waiting == ids and got.error is not None and "HTTP 500" in got.error
    assert set(states(engine).values()) == {"sending"}
    assert event_types(engine)[-1] == "statements.send_failed"
    got = submitter(engine, s).run_once()  # the database is back (two faults left, then through)
    assert sorted(got.submitted) == sorted(ids) and set(states(engine).values()) == {"submitted"}
    assert all(r.attempts == 2 for r in statements(engine))


def test_a_slow_answer_times_out_and_the_resend_is_deduplicated(
    engine: Engine, banks: BankService, dsa: FakeDsa
) -> None:
    ids = blocks(engine, banks, 3)
    dsa.slow_seconds = 1.5
    dsa.faults.append(Fault("slow", count=1))  # stored, but answered after the client gave up
    s = dsa_settings(engine, dsa, dsa_timeout_seconds=0.5)
    got = submitter(engine, s).run_once()
    assert sorted(got.already) == sorted(ids) and got.submitted == []
    assert set(states(engine).values()) == {"submitted"} and len(dsa.stored) == 3
    assert dsa.posted == [3]  # stored once


def test_a_refused_token_stops_the_run_and_keeps_the_statements_pending(
    engine: Engine, banks: BankService, dsa: FakeDsa
) -> None:
    blocks(engine, banks, 2)
    got = submitter(engine, dsa_settings(engine, dsa, token="wrong")).run_once()
    assert got.error is not None and "HTTP 401" in got.error and got.submitted == []
    assert set(states(engine).values()) == {"pending"} and dsa.stored == {}


def test_settings_are_checked(engine: Engine, dsa: FakeDsa) -> None:
    with pytest.raises(ConfigError) as e:
        DsaClient.from_settings(engine.settings)
    assert e.value.code == "dsa_credentials"
    with pytest.raises(ConfigError) as e:  # a token in clear is refused
        DsaClient.from_settings(engine.settings.with_(dsa_url=dsa.url, dsa_token=TOKEN))
    assert e.value.code == "dsa_credentials"
    s = dsa_settings(engine, dsa)
    with pytest.raises(ConfigError):
        DsaClient.from_settings(s.with_(dsa_url="http://transparency.example.eu"))  # https only, off loopback
    with pytest.raises(ConfigError):
        StatementSubmitter(engine.db, s.with_(dsa_batch_size=101), DsaClient.from_settings(s))
    assert TOKEN not in repr(DsaClient.from_settings(s))


def test_the_egress_policy_applies(engine: Engine, banks: BankService, dsa: FakeDsa) -> None:
    blocks(engine, banks, 1)
    s = dsa_settings(engine, dsa).with_(egress_allow="")  # loopback is refused unless listed
    got = submitter(engine, s).run_once()
    assert got.error is not None and "egress" in got.error and dsa.calls == 0
    assert set(states(engine).values()) == {"pending"}
