"""API keys: the in-process cache of checked keys, and how fast a revoke takes effect."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from safeguard.errors import Unauthorized
from safeguard.keys import KeyService
from safeguard.store import Database


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    d = Database(db_url)
    d.migrate()
    yield d
    d.dispose()


def test_cached_only_after_a_database_check(db: Database) -> None:
    ks = KeyService(db)
    k = ks.create("platform", "p", actor="t")
    assert ks.cached(k["key"]) is None  # never checked in this process
    p = ks.authenticate(k["key"])
    assert ks.cached(k["key"]) == p and p.role == "platform"
    wrong = k["key"][:-4] + ("AAAA" if not k["key"].endswith("AAAA") else "BBBB")  # right prefix, wrong secret
    assert ks.cached(wrong) is None
    with pytest.raises(Unauthorized):
        ks.authenticate(wrong)
    assert ks.cached(None) is None and ks.cached("not-a-key") is None


def test_revoke_is_immediate_here_and_within_the_cache_time_elsewhere(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    here, elsewhere = KeyService(db), KeyService(db)  # `elsewhere` stands for another worker process
    k = here.create("platform", "p", actor="t")
    here.authenticate(k["key"])
    elsewhere.authenticate(k["key"])
    here.revoke(k["prefix"], actor="t")
    assert here.cached(k["key"]) is None
    with pytest.raises(Unauthorized):
        here.authenticate(k["key"])
    # the other process still trusts its recent check until CACHE_SECONDS pass...
    assert elsewhere.cached(k["key"]) is not None
    import safeguard.keys as keys_module

    real = keys_module.time.monotonic
    monkeypatch.setattr(keys_module.time, "monotonic", lambda: real() + KeyService.CACHE_SECONDS + 0.1)
    # ...then reads the database again and refuses the key
    assert elsewhere.cached(k["key"]) is None
    with pytest.raises(Unauthorized):
        elsewhere.authenticate(k["key"])
    assert KeyService.CACHE_SECONDS <= 5  # "within seconds"
