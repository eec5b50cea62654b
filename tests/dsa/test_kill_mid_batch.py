"""Exactly once: a submitter process killed mid-batch (the database stored the batch and the answer never
arrived, or the database had not stored it yet), then restarted, leaves every statement stored once and
recorded ``submitted``. The approach of tests/reports/test_kill_every_step.py. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from safeguard.banks import BankService
from safeguard.engine import Engine
from tests.dsa.dsa_server import FakeDsa, Fault
from tests.helpers.dsa import blocks, dsa_settings, statements
from tests.helpers.reports import env_of

#: (fault, requests let through first): batches of 2 over 5 statements are 3 requests
STEPS = [("hold", 0), ("hold", 1), ("hold", 2), ("hold_before", 0), ("hold_before", 2)]


@pytest.fixture
def dsa() -> Iterator[FakeDsa]:
    fake = FakeDsa().start()
    yield fake
    fake.stop()


def submit(env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "safeguard.cli", "statements", "submit"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).parents[2])


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("kind", "after"), STEPS)
def test_killed_mid_batch_then_restarted_stores_every_statement_once(
    engine: Engine, banks: BankService, dsa: FakeDsa, kind: str, after: int
) -> None:
    ids = blocks(engine, banks, 5)
    env = env_of(dsa_settings(engine, dsa, dsa_batch_size=2))
    dsa.faults.append(Fault(kind, 1, after=after))
    p = submit(env)
    try:
        assert dsa.held.wait(60), p.communicate(timeout=5)
    finally:
        p.kill()
        p.wait(10)
    in_flight = {s.puid for s in statements(engine) if s.state == "sending"}
    recorded = {s.puid for s in statements(engine) if s.state == "submitted"}
    assert len(in_flight) == (1 if after == 2 else 2)  # recorded before the call
    dsa.release.set()
    dsa.faults.clear()
    again = submit(env)
    out, errs = again.communicate(timeout=120)
    assert again.returncode == 0, errs.decode()[-2000:]
    got = json.loads(out.decode().strip().splitlines()[-1])
    assert sorted(dsa.stored) == sorted(ids)  # every statement, once (the fake refuses a puid twice)
    assert sum(dsa.posted) == 5
    assert set(got["already"]) == (in_flight if kind == "hold" else set())
    assert set(got["submitted"]) | set(got["already"]) == set(ids) - recorded  # the rest, by the restarted run
    rows = statements(engine)
    assert {r.state for r in rows} == {"submitted"} and all(r.batch is None for r in rows)
