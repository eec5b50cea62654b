"""Fuzz tests share one target app per module (SQLite only: these look for crashes in parsing and
decoding, not for differences between databases) and a fixed example budget each, so the whole
directory adds well under a minute and a half to CI. ``bench/fuzz.py`` runs the same targets longer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz.harness import FuzzTarget, fuzz_target, seed_media


@pytest.fixture(scope="module")
def target() -> Iterator[FuzzTarget]:
    with fuzz_target() as t:
        yield t


@pytest.fixture(scope="session")
def seeds() -> dict[str, bytes]:
    return seed_media()
